"""The fields of `infra.settings.Settings`, one pydantic mixin per concern.

Each module holds the settings of one concern (their environment variables, defaults, descriptions and
`.env.example` groups), their validators, and the property that builds the concern's config from them when
it reads only those fields. `infra.settings` composes the mixins into `Settings`; import from there.
"""
