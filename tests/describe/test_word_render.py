"""Word tables rendered as a reader sees them (issue 21): LibreOffice (headless) turns the
.docx into PDF, poppler's pdfinfo/pdftoppm/pdftotext give page sizes, PNG pages and text.
Checked: A4 (or US Letter) pages, a wide table in a landscape section, nothing printed in the
right or bottom margin (no table runs off the page), and a CI that does not wrap.

Debian packages: ``libreoffice-writer-nogui`` (or ``libreoffice-core``) and ``poppler-utils``;
``.ci/run`` installs them. Without them the test is skipped, saying which program is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peerstats.describe.render import Table
from peerstats.describe.word import PAGES, table_to_docx, tables_to_docx

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
MISSING = [
    n
    for n, p in (
        ("soffice", SOFFICE),
        ("pdftoppm", shutil.which("pdftoppm")),
        ("pdfinfo", shutil.which("pdfinfo")),
    )
    if p is None
]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{MISSING} not installed (Debian: apt-get install -y libreoffice-writer-nogui "
    "poppler-utils)",
)

PT_PER_CM = 72 / 2.54
CI = "1.66 (\u22121.37 to 4.69)"


def _narrow() -> Table:
    disp = pd.DataFrame(
        {
            "Characteristic": ["Age (years), mean (SD)", "Gender, n (%)", "  Woman", "  Man"],
            "Peer support (n = 30)": ["50.5 (17.4)", "", "9 (30.0%)", "10 (33.3%)"],
            "Usual services (n = 30)": ["51.7 (18.6)", "", "15 (50.0%)", "9 (30.0%)"],
        }
    )
    return Table(disp, disp, caption="Baseline characteristics", notes=["SMD: standardised."])


def _wide(n_extra: int = 0) -> Table:
    cols = {
        "Outcome": ["Personal recovery (QPR-15 total) (primary)", "Well-being score"] * 3,
        "Visit": ["Week 10", "Month 6", "Month 12"] * 2,
        "Usual services: n, mean (SD)": ["26, 30.35 (7.03)"] * 6,
        "Peer support: n, mean (SD)": ["26, 32.31 (7.64)"] * 6,
        "Difference (95% CI)": [CI] * 6,
        "p": ["0.277"] * 6,
        "p (holm)": ["0.277"] * 6,
        "d (95% CI)": ["0.22 (\u22120.18 to 0.63)"] * 6,
    }
    for k in range(n_extra):
        cols[f"Sensitivity analysis {k + 1} (95% CI)"] = [CI] * 6
    disp = pd.DataFrame(cols)
    return Table(disp, disp, caption="Outcomes", notes=["Difference: model-adjusted."])


def _convert(paths: list[Path]) -> None:
    """One LibreOffice run for every document (its start-up is most of the time)."""
    out = paths[0].parent
    profile = (out / "lo-profile").resolve().as_uri()
    subprocess.run(
        [
            SOFFICE,
            "--headless",
            "--norestore",
            f"-env:UserInstallation={profile}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            *map(str, paths),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _sizes(pdf: Path) -> list[tuple[float, float]]:
    info = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", "99", str(pdf)], check=True, capture_output=True, text=True
    ).stdout
    sizes = []
    for line in info.splitlines():
        if line.startswith("Page") and "size:" in line:
            w, _, h = line.split("size:")[1].split()[:3]
            sizes.append((float(w), float(h)))
    return sizes


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """The documents of the tests below, written and converted to PDF once."""
    import docx
    from docx.shared import Cm

    folder = tmp_path_factory.mktemp("word")
    tables_to_docx([_narrow(), _wide(), _wide(n_extra=4)], folder / "tables.docx")
    table_to_docx(_narrow(), folder / "letter.docx", page="letter", orientation="portrait")
    # negative control: ten 3 cm columns on a Letter page (text width 16.5 cm)
    doc = docx.Document()
    grid = doc.add_table(rows=2, cols=10)
    grid.autofit = False
    for col in grid.columns:
        col.width = Cm(3)
        for cell in col.cells:
            cell.width = Cm(3)
            cell.text = "12345 (6.7 to 8.9)"
    doc.save(folder / "off.docx")
    names = ["tables", "letter", "off"]
    _convert([folder / f"{n}.docx" for n in names])
    return {n: folder / f"{n}.pdf" for n in names}


def _pages_png(pdf: Path, dpi: int = 50) -> list[np.ndarray]:
    from PIL import Image

    prefix = pdf.with_suffix("")
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-gray", "-png", str(pdf), str(prefix)],
        check=True,
        capture_output=True,
    )
    files = sorted(pdf.parent.glob(f"{prefix.name}-*.png"))
    return [np.asarray(Image.open(f).convert("L")) for f in files]


def _ink_outside_text_area(img: np.ndarray, margin_cm: float, dpi: int = 50) -> bool:
    """Dark pixels in the right or bottom margin (the left margin and the top hold nothing
    but may hold the start of a text line)."""
    px = int((margin_cm - 0.3) * dpi / 2.54)  # 3 mm of slack at the text edge
    dark = img < 128
    return bool(dark[:, img.shape[1] - px :].any() or dark[img.shape[0] - px :, :].any())


def test_a4_portrait_and_landscape_sections_within_margins(rendered):
    pdf = rendered["tables"]
    sizes = _sizes(pdf)
    a4 = (21.0 * PT_PER_CM, 29.7 * PT_PER_CM)
    assert len(sizes) == 3
    assert sizes[0] == pytest.approx(a4, abs=2)  # portrait A4
    assert sizes[1] == pytest.approx(a4[::-1], abs=2)  # the wide table: landscape
    assert sizes[2] == pytest.approx(a4[::-1], abs=2)  # wider still: landscape, scaled
    pages = _pages_png(pdf)
    assert len(pages) == 3
    for img in pages:
        assert (img < 128).any()  # something was printed
        assert not _ink_outside_text_area(img, PAGES["a4"][2])
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert CI in text  # the CI is on one line, not wrapped
    assert "Table 1" in text and "Table 3" in text and "Note." in text


def test_letter_and_a_forced_portrait(rendered):
    pdf = rendered["letter"]
    assert _sizes(pdf) == [pytest.approx((612.0, 792.0), abs=2)]
    (img,) = _pages_png(pdf)
    assert not _ink_outside_text_area(img, PAGES["letter"][2])


def test_the_margin_check_sees_a_table_that_runs_off_the_page(rendered):
    """Negative control: the check above would see a table wider than the text."""
    (img,) = _pages_png(rendered["off"])
    assert _ink_outside_text_area(img, PAGES["letter"][2])
