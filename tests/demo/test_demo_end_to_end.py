"""The demo as `make run` prepares it: downloaded from a mirror, imported, indexed, answered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.config import Settings
from bot.reply import ReplyPath
from bot.runtime import build_runtime
from ui.demo.answer_templates import with_demo_templates
from ui.demo.setup import SGD_FILES, prepare_demo
from ui.demo.sources import demo_files

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _mirror_shared_data(shared_data_dir: Path, served_root: Path) -> None:
    """Lay out the demo's files under the HTTP server's root as a mirror would."""
    for file in demo_files(sgd_files=SGD_FILES):
        candidates = [shared_data_dir / file.dataset / file.path]
        if file.gzip_accepted:
            candidates.append(candidates[0].with_name(candidates[0].name + ".gz"))
        source = next(path for path in candidates if path.is_file())
        target = served_root / file.dataset / source.relative_to(shared_data_dir / file.dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def demo_runtime(tmp_path_factory, shared_data_dir, packaged_embedder, packaged_generator):
    from tests.demo.conftest import serve_folder

    served = tmp_path_factory.mktemp("mirror")
    _mirror_shared_data(shared_data_dir, served)
    home = tmp_path_factory.mktemp("demo-home")
    with serve_folder(served) as server:
        settings = Settings(home=home, data_dir=None, demo_base_url=server.base_url)
        summary = prepare_demo(settings)
        requests = list(server.requests)

    runtime = build_runtime(
        with_demo_templates(settings), embedder=packaged_embedder, generator=packaged_generator
    )
    yield runtime, summary, requests
    runtime.close()


def test_demo_downloads_from_mirror(demo_runtime):
    runtime, summary, requests = demo_runtime

    downloaded = runtime.settings.home / "datasets"
    assert len(requests) >= len(demo_files(sgd_files=SGD_FILES))
    assert (downloaded / "stackfaq" / "stackExchange-FAQ.json").is_file()
    assert (downloaded / "crosswoz" / "val.json.zip").is_file()
    assert "[sgd] Imported conversations: 256 (4420 messages)" in summary
    assert "[crosswoz] Imported conversations: 300" in summary


def test_demo_answers_stackfaq_paraphrase(demo_runtime, shared_data_dir):
    runtime, _, _ = demo_runtime
    faq = json.loads((shared_data_dir / "stackfaq" / "stackExchange-FAQ.json").read_text())
    thread = faq["root"]["qapair"][0]
    manager = runtime.dialog_manager

    reply = manager.respond(manager.start_conversation(), thread["rephr"][0])

    assert reply.path is ReplyPath.RETRIEVED
    assert reply.citations[0].title == thread["question"]


def test_demo_answers_chinese_venue_question(demo_runtime):
    runtime, _, _ = demo_runtime
    manager = runtime.dialog_manager

    reply = manager.respond(manager.start_conversation(), "故宫的门票多少钱？")

    assert reply.language == "zh-CN"
    assert reply.citations[0].title == "故宫"
    assert "60元" in reply.text


def test_demo_falls_back_on_unrelated_question(demo_runtime):
    runtime, _, _ = demo_runtime
    manager = runtime.dialog_manager

    reply = manager.respond(manager.start_conversation(), "Who won the football world cup in 1974?")

    assert reply.path is ReplyPath.FALLBACK
    assert reply.citations == []


def test_demo_trains_intent_model(demo_runtime):
    runtime, summary, _ = demo_runtime

    assert "Trained intent model intent-en-" in summary
    assert runtime.nlu_models.known_intents() >= {"ReserveRestaurant", "PlayMovie"}
    assert runtime.settings.policy.templates_path is not None


def test_demo_template_asks_for_film_title(demo_runtime):
    runtime, _, _ = demo_runtime
    manager = runtime.dialog_manager
    conversation_id = manager.start_conversation()

    prompt = manager.respond(conversation_id, "I'd like to watch a movie.")
    answer = manager.respond(conversation_id, "Green Book")

    assert prompt.path is ReplyPath.TEMPLATE
    assert prompt.explanation["template"]["asked_slot"] == "title"
    assert answer.path is ReplyPath.TEMPLATE
    assert answer.explanation["template"]["slots"] == {"title": "Green Book"}
    assert "Green Book has not started" in answer.text
