"""The JSON that `Session.json_of` and `User.json_of` answer, written as FastAPI would dump the
response model (their GET routes skip building the model, lucid.sessions.schemas)."""

from typing import Any

from pydantic import TypeAdapter

# pydantic's serializer of a JSON object with its default config, as a response model's (none of
# ours has a config of its own): the values dumped by their types, NaN and infinities as null
# (ser_json_inf_nan). A module of its own, imported by the two schemas only: lucid.store.documents
# would build it in every function that reads the store (the auth function's cold start too).
JSON_OBJECT = TypeAdapter(dict[str, Any]).serializer
