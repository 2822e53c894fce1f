"""Public demo data: locating or downloading it and turning it into a demo corpus."""

from ui.demo.corpus import DemoCorpus, DialogSlice, build_demo_corpus
from ui.demo.fetch import DemoDataError, ensure_demo_files
from ui.demo.sources import DemoFile, demo_files

__all__ = [
    "DemoCorpus",
    "DemoDataError",
    "DemoFile",
    "DialogSlice",
    "build_demo_corpus",
    "demo_files",
    "ensure_demo_files",
]
