"""Fixtures of the demo-data tests: a local HTTP server and a tiny datasets folder."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DIALOG_FIXTURES = Path(__file__).parents[1] / "fixtures" / "dialogs"


@dataclass
class FileServer:
    """A static file server on 127.0.0.1 that records request paths."""

    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)
    # Paths whose next response announces the full length but sends half the body.
    truncate_once: set[str] = field(default_factory=set)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, state: FileServer, **kwargs) -> None:
        self.state = state
        super().__init__(*args, directory=str(state.root), **kwargs)

    def log_message(self, format: str, *args) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        self.state.requests.append(self.path)
        if self.path in self.state.truncate_once:
            self.state.truncate_once.discard(self.path)
            body = (self.state.root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[FileServer]:
    """Serve ``root`` over HTTP on 127.0.0.1 until the block ends."""
    state = FileServer(root=root, base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, state=state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """Serve ``tmp_path/served`` over HTTP on 127.0.0.1 for the duration of a test."""
    root = tmp_path / "served"
    root.mkdir()
    with serve_folder(root) as state:
        yield state


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    """A datasets folder with every demo file, each holding a few hand-written records."""
    root = tmp_path / "datasets"
    for number in (1, 2, 3):
        target = root / "sgd" / "train" / f"dialogues_{number:03d}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DIALOG_FIXTURES / "sgd" / "train" / "dialogues_001.json", target)
    (root / "crosswoz").mkdir()
    with zipfile.ZipFile(root / "crosswoz" / "val.json.zip", "w") as archive:
        archive.write(DIALOG_FIXTURES / "crosswoz" / "val.json", "val.json")
    _write_json(root / "crosswoz" / "database" / "attraction_db.json", ATTRACTIONS)
    _write_json(root / "crosswoz" / "database" / "restaurant_db.json", RESTAURANTS)
    _write_json(root / "crosswoz" / "database" / "hotel_db.json", HOTELS)
    _write_json(root / "stackfaq" / "stackExchange-FAQ.json", STACKFAQ)
    _write_json(root / "abcd" / "guidelines.json", GUIDELINES)
    return root


ATTRACTIONS = [
    [
        "天坛公园",
        {
            "领域": "景点",
            "名称": "天坛公园",
            "地址": "北京市东城区天坛东里甲1号",
            "地铁": "天坛东门地铁站",
            "电话": "010-67028866",
            "门票": 15,
            "游玩时间": "2小时 - 3小时",
            "评分": 4.6,
            "周边景点": ["景点一", "景点二", "景点三", "景点四", "景点五", "景点六", "景点七"],
            "周边餐馆": ["餐馆甲"],
            "周边酒店": None,
        },
    ],
    [
        "免费公园 / 北门",
        {
            "领域": "景点",
            "名称": "免费公园 / 北门",
            "地址": "北京市某区某路1号",
            "地铁": None,
            "电话": "010-00000000",
            "门票": 0,
            "游玩时间": "1小时",
            "评分": None,
            "周边景点": [],
            "周边餐馆": [],
            "周边酒店": [],
        },
    ],
]
RESTAURANTS = [
    [
        "小吃店",
        {
            "领域": "餐馆",
            "名称": "小吃店",
            "地址": "北京市西城区某街93号",
            "地铁": "某地铁站A口",
            "电话": "010-11111111",
            "营业时间": "5:30-21:00",
            "推荐菜": ["豆汁", "焦圈", "驴打滚"],
            "人均消费": 23,
            "评分": 4.3,
            "周边景点": ["天坛公园"],
            "周边餐馆": [],
            "周边酒店": [],
        },
    ]
]
HOTELS = [
    [
        "某某大酒店",
        {
            "领域": "酒店",
            "名称": "某某大酒店",
            "酒店类型": "高档型",
            "地址": "北京西城区某大街217号",
            "地铁": "某地铁站D口",
            "电话": "010-22222222",
            "酒店设施": ["宽带上网", "吹风机", "24小时热水"],
            "价格": 1354,
            "评分": 4.7,
            "周边景点": ["天坛公园"],
            "周边餐馆": ["小吃店"],
            "周边酒店": None,
        },
    ]
]
STACKFAQ = {
    "root": {
        "qapair": [
            {
                "question": "How do I reset my password?",
                "answer": ["Use the Forgot password link.", "Or ask an admin to reset it."],
                "rephr": ["I forgot my password, what now?"],
            },
            {
                "question": "Can I export my data?",
                "answer": "Yes: Settings > Export writes a JSON file.",
                "rephr": ["How to download everything I stored?"],
            },
        ]
    }
}
GUIDELINES = {
    "Account Access": {
        "description": "username, password, and two-factor authentication",
        "subflows": {
            "Recover Password": {
                "actions": [
                    {
                        "type": "interaction",
                        "button": "Pull up Account",
                        "text": "Ask for the full name with [Pull up Account].",
                        "subtext": [],
                    },
                    {
                        "type": "kb query",
                        "button": "Enter Details",
                        "text": "Verify the identity with [Enter Details]:",
                        "subtext": ["Username", "Email address"],
                    },
                ],
                "instructions": [
                    "Start by asking what the customer needs.",
                    "As always, ask if anything else is needed.",
                ],
            }
        },
    },
    "Order Issue": {
        "description": "get status of an order",
        "subflows": {
            "Status Check": {
                "actions": [
                    {
                        "type": "interaction",
                        "button": "Validate Purchase",
                        "text": "Validate the order with [Validate Purchase].",
                        "subtext": [],
                    }
                ],
                "instructions": ["Ask for the order ID.", "Wrap up politely."],
            },
            "Change Address": {
                "actions": [],
                "instructions": ["Ask for the new address.", "Confirm the change."],
            },
        },
    },
}
