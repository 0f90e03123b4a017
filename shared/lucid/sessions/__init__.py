"""Sessions: what clients send and get back (`schemas`), the lifecycle and the repository that
scopes every read and write to the caller (`repository`), and `If-Match` (`preconditions`)."""
