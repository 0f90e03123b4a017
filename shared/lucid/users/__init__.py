"""Users: the one repository over the `users` collection, its schemas, and account closure."""
