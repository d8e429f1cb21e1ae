from __future__ import annotations

from marshmallow import Schema, fields, pre_load, validate


class CredentialsSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(
        required=True, validate=validate.Length(min=8, max=128), load_only=True
    )

    @pre_load
    def normalise_email(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


class UserSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)


class TokensSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String()
    user = fields.Nested(UserSchema, required=True)


class MeSchema(UserSchema):
    role = fields.String()
    createdAt = fields.DateTime()
