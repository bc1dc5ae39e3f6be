"""The users table and the queries on it; every function runs inside the caller's unit of work (kit.db)."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sagashop.events import outbox
from sagashop.events.catalog import UserRegistered
from sagashop.kit.clock import now

from .domain import User

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String, primary_key=True), sa.Column("email", sa.String, unique=True),
    sa.Column("name", sa.String), sa.Column("password_hash", sa.String), sa.Column("roles", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
)


def _user(row: sa.Row[Any]) -> User:
    return User(row.id, row.email, row.name, tuple(row.roles), row.password_hash)


class Users:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _one(self, condition: sa.ColumnElement[bool]) -> User | None:
        row = self.conn.execute(sa.select(users).where(condition)).first()
        return _user(row) if row else None

    def by_id(self, user_id: str) -> User | None:
        return self._one(users.c.id == user_id)

    def by_email(self, email: str) -> User | None:
        return self._one(users.c.email == email)

    def add(self, u: User) -> User:
        """Adds the user and its event (user.registered), in the caller's transaction. Raises IntegrityError when
        the email is taken: the unique index decides between two racing sign-ups."""
        moment = now()
        self.conn.execute(users.insert().values(
            id=u.id, email=u.email, name=u.name, password_hash=u.password_hash, roles=list(u.roles),
            created_at=moment, updated_at=moment,
        ))
        outbox.write(self.conn, outbox.event(UserRegistered(user_id=u.id, email=u.email, name=u.name), u.id,
                                             causation_id="CreateUser", user_id=u.id))
        return u

    def update(self, u: User) -> User:
        self.conn.execute(users.update().where(users.c.id == u.id).values(
            name=u.name, password_hash=u.password_hash, roles=list(u.roles), updated_at=now(),
        ))
        return u
