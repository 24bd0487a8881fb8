"""mkdocs hooks: the site's landing page is README.md and its learning path is notebooks/, both kept where a
code host shows them; the links between them are rewritten for the site. The navigation is built here from
the files, so that a new page in docs/ or a new notebook is on the site without editing mkdocs.yml."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def site_links(markdown: str) -> str:
    """Rewrite the README's repository links (docs/x.md, notebooks/...) to the site's pages."""
    markdown = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", markdown)
    return re.sub(r"\]\(notebooks/([^)]+)\)", r"](notebooks/\1)", markdown)


def on_config(config):
    """Build the navigation: home, the layout, every guide in docs/, the learning path, the API reference."""
    fixed = ("architecture.md", "reference.md")
    guides = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name not in fixed)
    notebooks = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))
    config["nav"] = [{"Home": "index.md"}, "architecture.md", {"Guides": guides},
                     {"Learning path": ["notebooks/README.md", *notebooks]}, {"API reference": "reference.md"}]
    return config


@event_priority(100)  # before mkdocs-jupyter looks at the files
def on_files(files, config):
    files.append(File.generated(config, "index.md", content=site_links((ROOT / "README.md").read_text())))
    for path in sorted((ROOT / "notebooks").iterdir()):
        if path.suffix in (".ipynb", ".md"):
            files.append(File(f"notebooks/{path.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
