from __future__ import annotations

from marshmallow import Schema, fields, pre_load, validate

from services.api.schemas.fields import ObjectIdField, one_of
from shared.users import ROLES


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
    id = ObjectIdField(required=True)
    email = fields.String(required=True)


class TokensSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    user = fields.Nested(UserSchema, required=True)


class MeSchema(UserSchema):
    role = one_of(ROLES, required=True)
    createdAt = fields.DateTime(required=True)
