"""The official account's custom menu (自定义菜单) and welcome message, from one config file (`menu.yml`).

The same file tells the connector what a menu click means (a CLICK button's `key` → `payload`: an intent such as
`/report_problem` or plain text the bot reads like a citizen's) and what a new follower is told (the welcome text,
with the click entries as numbered choices, since a text reply has no buttons).

    python -m channels.wechat.menu publish channels/wechat/menu.yml   # menu/create with the account's credentials
    python -m channels.wechat.menu show channels/wechat/menu.yml      # the JSON it would publish

WeChat's limits are checked before anything is sent: at most 3 top-level buttons of up to 16 bytes, 5 sub-buttons
each of up to 60 bytes, keys up to 128 bytes, and a CLICK needs a key, a VIEW a URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from gateway.message import Button

MAX_TOP = 3
MAX_SUB = 5


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


class MenuButton(BaseModel):
    name: str = Field(min_length=1)
    type: Literal["click", "view"] | None = None  # inferred: `url` → view, `key` → click
    key: str | None = None
    payload: str | None = None  # what a click means to the bot; default: the button's name
    url: str | None = None
    sub_button: list[MenuButton] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> MenuButton:
        if self.sub_button:
            if len(self.sub_button) > MAX_SUB:
                raise ValueError(f"{self.name}: at most {MAX_SUB} sub-buttons")
            if self.key or self.url:
                raise ValueError(f"{self.name}: a button with sub-buttons has no key or url of its own")
            for sub in self.sub_button:
                if sub.sub_button:
                    raise ValueError(f"{sub.name}: menus are two levels deep at most")
                if _bytes(sub.name) > 60:
                    raise ValueError(f"{sub.name}: a sub-button name is at most 60 bytes")
            return self
        kind = self.type or ("view" if self.url else "click")
        self.type = kind
        if kind == "click" and not self.key:
            raise ValueError(f"{self.name}: a click button needs a key")
        if kind == "view" and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError(f"{self.name}: a view button needs an http(s) url")
        if self.key and _bytes(self.key) > 128:
            raise ValueError(f"{self.name}: key longer than 128 bytes")
        return self

    def wire(self) -> dict[str, Any]:
        if self.sub_button:
            return {"name": self.name, "sub_button": [b.wire() for b in self.sub_button]}
        if self.type == "view":
            return {"type": "view", "name": self.name, "url": self.url}
        return {"type": "click", "name": self.name, "key": self.key}


class MenuConfig(BaseModel):
    welcome: dict[str, str] = Field(default_factory=dict)  # language → text
    buttons: list[MenuButton] = Field(min_length=1)

    @model_validator(mode="after")
    def _limits(self) -> MenuConfig:
        if len(self.buttons) > MAX_TOP:
            raise ValueError(f"at most {MAX_TOP} top-level buttons")
        for button in self.buttons:
            if _bytes(button.name) > 16:
                raise ValueError(f"{button.name}: a top-level name is at most 16 bytes")
        keys = [b.key for b in self.leaves() if b.key]
        if len(keys) != len(set(keys)):
            raise ValueError("menu keys must be unique")
        return self

    def leaves(self) -> list[MenuButton]:
        return [leaf for b in self.buttons for leaf in (b.sub_button or [b])]

    def wire(self) -> dict[str, Any]:
        """The body of menu/create."""
        return {"button": [b.wire() for b in self.buttons]}

    def click_payloads(self) -> dict[str, str]:
        """A CLICK event's EventKey → what the bot is told."""
        return {b.key: b.payload or b.name for b in self.leaves() if b.type == "click" and b.key}

    def welcome_buttons(self) -> tuple[Button, ...]:
        """The menu as choices (numbered in a text reply; a URL entry becomes a link)."""
        return tuple(
            Button(b.name, b.payload or b.name) if b.type == "click" else Button(b.name, b.url or "")
            for b in self.leaves()
        )

    def welcome_text(self, language: str) -> str:
        return self.welcome.get(language) or self.welcome.get("zh") or ""


def load_menu(path: Path) -> MenuConfig:
    """Read and check a menu file; a ValueError says what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return MenuConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
