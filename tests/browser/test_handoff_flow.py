"""A customer hands off to an agent, who replies and corrects the bot, in real browsers."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from storage.conversation_queries import list_queue
from storage.models import Correction, Message, Role

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE_TIMEOUT_S = 30
# The chat polls every second in these tests; an agent reply must show within this time.
POLL_TIMEOUT_S = 30
HTML_PROBE = '<img src=x onerror="window.__injected=1"><b>bold?</b>'


def _field(driver: WebDriver, element_id: str):
    return driver.find_element(
        By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input:not([type=radio])"
    )


def _type(driver: WebDriver, element_id: str, text: str, *, submit: bool = False) -> None:
    field = _field(driver, element_id)
    field.clear()
    field.send_keys(text)
    if submit:
        field.send_keys(Keys.ENTER)


def _wait_text(driver: WebDriver, element_id: str, text: str, timeout_s: float = PAGE_TIMEOUT_S):
    WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(
        lambda d: text in d.find_element(By.ID, element_id).text,
        message=f"#{element_id} did not show {text!r} within {timeout_s} s",
    )
    return driver.find_element(By.ID, element_id)


def _open(driver: WebDriver, url: str, ready_id: str) -> None:
    driver.get(url)
    WebDriverWait(driver, PAGE_TIMEOUT_S).until(
        lambda d: d.find_elements(By.ID, ready_id),
        message=f"{url} did not render #{ready_id} within {PAGE_TIMEOUT_S} s",
    )


def test_handoff_reply_and_correction(driver, server_url, browser_runtime, artifacts_dir: Path):
    # The customer sends a question, then requests a human and writes HTML.
    _open(driver, f"{server_url}/chat/", "chat-input")
    chat_tab = driver.current_window_handle
    _type(driver, "chat-input", "Can I pay with PayPal?", submit=True)
    _wait_text(driver, "chat-history", "Payment methods")
    driver.save_screenshot(str(artifacts_dir / "01-chat-bot-answer.png"))
    _type(driver, "chat-input", "I want to talk to a human agent", submit=True)
    _wait_text(driver, "chat-history", "passing you to a human agent")
    _type(driver, "chat-input", HTML_PROBE, submit=True)
    chat_history = _wait_text(driver, "chat-history", HTML_PROBE)
    driver.save_screenshot(str(artifacts_dir / "02-chat-handoff.png"))

    assert chat_history.find_elements(By.CSS_SELECTOR, "img[src=x]") == []
    assert driver.execute_script("return window.__injected === undefined")

    with browser_runtime.session_factory() as session:
        queued = [c.id for c in list_queue(session)]
    assert len(queued) == 1
    conversation_id = queued[0]

    # The agent finds the conversation in the queue, opens and claims it, and replies.
    driver.switch_to.new_window("tab")
    console_tab = driver.current_window_handle
    _open(driver, f"{server_url}/console/", "console-agent")
    _wait_text(driver, "console-queue", f"#{conversation_id}")
    driver.save_screenshot(str(artifacts_dir / "03-console-queue.png"))
    _type(driver, "console-agent", "Alice")
    _type(driver, "console-conversation-id", str(conversation_id))
    driver.find_element(By.ID, "console-open").click()
    transcript = _wait_text(driver, "console-transcript", HTML_PROBE)
    driver.save_screenshot(str(artifacts_dir / "04-console-transcript.png"))

    assert transcript.find_elements(By.CSS_SELECTOR, "img[src=x]") == []
    assert driver.execute_script("return window.__injected === undefined")

    driver.find_element(By.ID, "console-claim").click()
    _wait_text(driver, "console-status", f"You now hold conversation #{conversation_id}")
    _type(driver, "console-reply-text", "Hello, this is Alice from support.")
    driver.find_element(By.ID, "console-reply").click()
    _wait_text(driver, "console-status", f"Reply sent to conversation #{conversation_id}")
    driver.save_screenshot(str(artifacts_dir / "05-console-replied.png"))

    # The customer's chat shows the agent's reply without a reload.
    driver.switch_to.window(chat_tab)
    _wait_text(driver, "chat-history", "Hello, this is Alice from support.", POLL_TIMEOUT_S)
    driver.save_screenshot(str(artifacts_dir / "06-chat-agent-reply.png"))

    # The agent marks the bot's first reply wrong and saves the right text.
    with browser_runtime.session_factory() as session:
        first_bot_reply = session.scalars(
            select(Message.id)
            .where(Message.conversation_id == conversation_id, Message.role == Role.BOT)
            .order_by(Message.seq)
        ).first()
    driver.switch_to.window(console_tab)
    _type(driver, "console-correction-id", str(first_bot_reply))
    _type(driver, "console-correction-text", "Yes: PayPal works for every order.")
    driver.find_element(By.ID, "console-correction-save").click()
    _wait_text(driver, "console-status", f"Saved the correction of message #{first_bot_reply}")
    _wait_text(driver, "console-transcript", "Yes: PayPal works for every order.")
    driver.save_screenshot(str(artifacts_dir / "07-console-correction.png"))

    with browser_runtime.session_factory() as session:
        corrections = session.scalars(
            select(Correction).where(Correction.message_id == first_bot_reply)
        ).all()
    assert [(c.text, c.author) for c in corrections] == [
        ("Yes: PayPal works for every order.", "Alice")
    ]
