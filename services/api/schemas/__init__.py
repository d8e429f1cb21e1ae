"""marshmallow schemas for request bodies, queries and responses. Unknown fields are
rejected everywhere (marshmallow's default, RAISE), so `$`-operators and extra keys
never reach a query."""
