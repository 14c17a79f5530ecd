"""Log in, refresh, change one's password, and manage users (admins): thin adapters over `AuthService`.

Passwords arrive as `SecretStr` and their length is checked by the service, not by pydantic, so that a
refused password is never echoed back in the 422 body the way pydantic's errors echo their input.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from infra.db.repositories.users import User
from trading_daemon.api.auth import AuthService, Credentials, TokenPair
from trading_daemon.api.deps import Admin, Viewer
from trading_daemon.api.principal import Role

router = APIRouter(prefix="/api/auth", tags=["auth"])

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"
_PASSWORD_DOC = "12 characters or more, 72 bytes or fewer in UTF-8"


def _auth(request: Request) -> AuthService:
    auth: AuthService = request.app.state.auth
    return auth


Auth = Annotated[AuthService, Depends(_auth)]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: SecretStr


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr
    new_password: SecretStr = Field(description=_PASSWORD_DOC)


class CreateUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    password: SecretStr = Field(description=_PASSWORD_DOC)
    role: Role


class TokenPairResponse(BaseModel):
    """Send `access_token` as `Authorization: Bearer …`; before `expires_in` seconds pass, trade
    `refresh_token` for a new pair at POST /api/auth/refresh."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_expires_in: int = Field(description="seconds the refresh token is valid")
    username: str
    role: Role

    @classmethod
    def of(cls, pair: TokenPair) -> TokenPairResponse:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
            refresh_expires_in=pair.refresh_expires_in,
            username=pair.username,
            role=pair.role,
        )


class VerifyResponse(BaseModel):
    user_id: int
    username: str
    role: Role
    expires_at_ms: int


class UserResponse(BaseModel):
    id: int
    username: str
    role: Role
    is_active: bool
    created_ms: int
    last_login_ms: int | None
    password_changed_ms: int | None

    @classmethod
    def of(cls, user: User) -> UserResponse:
        return cls(
            id=user.id,
            username=user.username,
            role=Role(user.role),
            is_active=user.is_active,
            created_ms=user.created_ms,
            last_login_ms=user.last_login_ms,
            password_changed_ms=user.password_changed_ms,
        )


@router.post("/login", response_model=TokenPairResponse, summary="Trade a username and password for tokens")
async def login(body: LoginRequest, request: Request, auth: Auth) -> TokenPairResponse:
    client = request.client.host if request.client is not None else "unknown"
    pair = await auth.login(body.username, body.password.get_secret_value(), client)
    return TokenPairResponse.of(pair)


@router.post("/refresh", response_model=TokenPairResponse, summary="Trade a refresh token for a new pair")
async def refresh(body: RefreshRequest, auth: Auth) -> TokenPairResponse:
    return TokenPairResponse.of(await auth.refresh(body.refresh_token))


@router.post(
    "/change-password",
    response_model=TokenPairResponse,
    summary="Change one's password; every token issued before stops working",
)
async def change_password(body: ChangePasswordRequest, caller: Viewer, auth: Auth) -> TokenPairResponse:
    pair = await auth.change_password(
        caller, body.current_password.get_secret_value(), body.new_password.get_secret_value()
    )
    return TokenPairResponse.of(pair)


@router.get("/verify", response_model=VerifyResponse, summary="Who the access token speaks for, until when")
async def verify(caller: Viewer, credentials: Credentials, auth: Auth) -> VerifyResponse:
    # `caller` has already answered 401 without a valid token; the grant adds the token's expiry.
    assert credentials is not None
    grant = await auth.verify_grant(credentials.credentials)
    return VerifyResponse(
        user_id=caller.user_id, username=caller.username, role=caller.role, expires_at_ms=grant.expires_at_ms
    )


@router.get("/users", response_model=list[UserResponse], summary="Every user (admin)")
async def users(caller: Admin, auth: Auth) -> list[UserResponse]:
    return [UserResponse.of(u) for u in await auth.users()]


@router.post("/users", response_model=UserResponse, status_code=201, summary="Create a user (admin)")
async def create_user(body: CreateUserRequest, caller: Admin, auth: Auth) -> UserResponse:
    user = await auth.create_user(caller, body.username, body.password.get_secret_value(), body.role)
    return UserResponse.of(user)


@router.delete("/users/{username}", response_model=UserResponse, summary="Deactivate a user (admin)")
async def deactivate_user(
    username: Annotated[str, Path(min_length=1, max_length=64)], caller: Admin, auth: Auth
) -> UserResponse:
    return UserResponse.of(await auth.deactivate_user(caller, username))
