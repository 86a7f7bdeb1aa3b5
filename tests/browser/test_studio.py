"""The content studio end to end, on a stack of its own (real Rasa + gateway; the studio edits a temporary copy of
the training data): an editor logs in, finds a message the bot did not understand in the review queue, adds it to an
intent, trains, reads the evaluation, puts the model live, and the bot then understands that message through the
REST channel; rolling back puts the previous model back."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import ADMIN_TOKEN, RASA_TOKEN, ROOT, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.rasa]

# Cantonese for "thanks a lot", which the shipped examples do not have: the base model falls back (so it lands in
# the review queue), and once it is an example of `thank`, the retrained model understands it.
UNSURE = "唔该晒"
INTENT = "thank"
EDITOR = {"email": "editor@binjiang.example", "password": "studio-editor-pw", "name": "Content editor",
          "role": "content_editor"}
TRAINING_MINUTES = 15


@dataclass
class StudioStack:
    base_url: str
    rasa_url: str
    project: Path
    data_dir: Path


@pytest.fixture(scope="module")
def studio_stack(rasa_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioStack]:
    """Rasa and a gateway whose studio edits a copy of training_data/ (the shared `stack` is left alone)."""
    data_dir = tmp_path_factory.mktemp("studio-stack")
    project = data_dir / "training_data"
    shutil.copytree(ROOT / "training_data", project)
    with running_stack(rasa_model, data_dir, STUDIO_PROJECT_DIR=str(project),
                       RASA_MODELS_DIR=str(rasa_model.parent)) as stack:
        yield StudioStack(stack.base_url, stack.rasa_url, project, data_dir)


async def say(base_url: str, text: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{base_url}/channels/rest/webhook",
                                   json={"sender": f"studio-{uuid.uuid4().hex[:8]}", "message": text})
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


async def editor_login(base_url: str) -> dict[str, str] | None:
    """A content editor's e-mail and password when the inbox's logins exist, else None (use the admin token)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        created = await http.post("/api/inbox/agents", json=EDITOR,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        if created.status_code == 404:
            return None
        assert created.status_code in (201, 409), created.text
        return {"email": EDITOR["email"], "password": EDITOR["password"]}


async def test_editor_turns_an_unsure_message_into_a_live_model(studio_stack: StudioStack, browser: Browser) -> None:
    base = studio_stack.base_url
    before = await say(base, UNSURE)
    assert before and before[0]["meta"]["intent"] != INTENT  # type: ignore[index]
    original_project = (studio_stack.project / "data/nlu/zh.yml").read_text()

    login = await editor_login(base)
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    try:
        await page.goto(f"{base}/studio?lang=en")
        if login is not None:
            await page.fill("input[name=email]", login["email"])
            await page.fill("input[name=password]", login["password"])
        else:
            await page.fill("[data-testid=login-token]", ADMIN_TOKEN)
        await page.click("[data-testid=login-submit]")

        # The review queue shows the message; it goes to `thank` with one click.
        item = page.locator("#review-list > li", has_text=UNSURE).first
        await expect(item).to_be_visible(timeout=30_000)
        await item.locator("select.intent-select").select_option(INTENT)
        await item.locator("button.add-example").click()
        await expect(page.locator("#message")).to_contain_text(f"{INTENT} ← {UNSURE}", timeout=30_000)
        await expect(page.locator("#review-list > li", has_text=UNSURE)).to_have_count(0)
        zh = (studio_stack.project / "data/nlu/zh.yml").read_text()
        assert zh != original_project and f"    - {UNSURE}\n" in zh

        # Train, then read the evaluation: the message is among the examples that got better.
        await page.click("nav button[data-tab=train]")
        await page.click("[data-testid=train]")
        evaluation = page.locator("[data-testid=evaluation]")
        await expect(evaluation).to_be_visible(timeout=TRAINING_MINUTES * 60_000)
        await expect(evaluation.locator("table.better")).to_contain_text(UNSURE)
        assert "%" in (await page.locator("[data-testid=new-accuracy]").inner_text())

        # Activate: the engine swaps models; the page shows the new one live.
        await page.click("[data-testid=activate]")
        await expect(page.locator("[data-testid=live-model]")).to_contain_text("studio-", timeout=300_000)
    finally:
        await context.close()

    # The bot now understands the message through the REST channel.
    after = await say(base, UNSURE)
    assert after and after[0]["meta"]["intent"] == INTENT  # type: ignore[index]

    # And one click (here the same API the button calls) goes back to the model that was live before.
    async with httpx.AsyncClient(base_url=base, timeout=300,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        rolled = await http.post("/api/studio/rollback")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["kind"] == "rollback" and not rolled.json()["model"].startswith("studio-")
        status = (await http.get(f"{studio_stack.rasa_url}/status", params={"token": RASA_TOKEN})).json()
        assert not Path(status["model_file"]).name.startswith("studio-")
