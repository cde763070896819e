"""Command line for writing synthetic DICOM studies: ``python -m datasets --help``."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydicom.dataset import Dataset
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from datasets.synthetic import (
    compress,
    default_study,
    iter_ct_series,
    radiograph,
    write_series,
)

app = typer.Typer(
    help=(
        "Write seeded, reproducible synthetic DICOM studies (Part-10 files) for tests, "
        "demos and benchmarks. The same --seed always gives the same UIDs, headers "
        "and pixels."
    ),
    no_args_is_help=True,
    add_completion=False,
)
# Progress and summary go to stderr so stdout stays clean for scripts.
console = Console(stderr=True)


class Kind(enum.StrEnum):
    """CT phantom anatomy."""

    abdomen = "abdomen"
    head = "head"


class Modality(enum.StrEnum):
    """Radiograph modality, which selects the SOP class."""

    DX = "DX"
    CR = "CR"


class Compression(enum.StrEnum):
    """Lossless transfer syntaxes the generator can write."""

    none = "none"
    jpeg_ls = "jpeg-ls-lossless"
    jpeg2000 = "jpeg2000-lossless"
    rle = "rle"


class CharsetChoice(enum.StrEnum):
    """How Chinese text is encoded in the files."""

    utf8 = "ISO_IR 192"
    gb18030 = "GB18030"
    gbk_undeclared = "GBK-undeclared"


OutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        file_okay=False,
        help="Output folder; created if missing, same-named files are overwritten.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed: the same seed writes identical files.")]
CompressOpt = Annotated[
    Compression,
    typer.Option("--compress", help="Lossless compression of the pixel data."),
]
CharsetOpt = Annotated[
    CharsetChoice,
    typer.Option(
        "--charset",
        help="Text encoding: UTF-8, GB18030, or GBK bytes with no (0008,0005) "
        "Specific Character Set, as many Chinese modalities send.",
    ),
]


def _progress() -> Progress:
    """Return a progress bar drawn on stderr."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _maybe_compress(items: Iterable[Dataset], compression: Compression) -> Iterable[Dataset]:
    """Compress lazily, one dataset at a time, so memory stays flat."""
    if compression is Compression.none:
        return items
    syntax = compression.value
    return (compress(ds, syntax) for ds in items)  # type: ignore[arg-type]


class _FirstHeader:
    """Pass datasets through, remembering identifiers of the first for the summary."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    def watch(self, items: Iterable[Dataset]) -> Iterator[Dataset]:
        """Yield ``items`` unchanged."""
        for ds in items:
            if not self.rows:
                name = str(ds.PatientName)
                raw = getattr(ds.PatientName, "original_string", None)
                if "SpecificCharacterSet" not in ds and isinstance(raw, bytes):
                    # Undeclared charset: show what the GBK bytes mean, not mojibake.
                    name = f"{raw.decode('gbk', 'replace')} (GBK, undeclared)"
                self.rows = {
                    "patient": f"{ds.PatientID} {name}",
                    "study": str(ds.StudyInstanceUID),
                    "series": str(ds.SeriesInstanceUID),
                    "transfer syntax": ds.file_meta.TransferSyntaxUID.name,
                }
            yield ds


def _summary(paths: list[Path], first: _FirstHeader) -> None:
    """Print the number and size of files written and key identifiers."""
    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # UIDs are long; wrap rather than truncate
    table.add_row("folder", str(paths[0].parent) if paths else "-")
    table.add_row("files", str(len(paths)))
    size = sum(p.stat().st_size for p in paths)
    table.add_row("size", f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB")
    for key, value in first.rows.items():
        table.add_row(key, value)
    console.print(table)


@app.command()
def ct(
    out: OutOpt,
    kind: Annotated[Kind, typer.Option("--kind", help="Phantom anatomy.")] = Kind.abdomen,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Number of axial slices.")] = 40,
    seed: SeedOpt = 0,
    rows: Annotated[int, typer.Option("--rows", min=16, help="Image rows.")] = 512,
    cols: Annotated[int, typer.Option("--cols", min=16, help="Image columns.")] = 512,
    thickness: Annotated[
        float | None,
        typer.Option(
            "--thickness",
            min=0.1,
            help="Slice thickness in mm. Default: a standard value so the series spans "
            "~400 mm (abdomen) or ~150 mm (head).",
        ),
    ] = None,
    compression: CompressOpt = Compression.none,
    charset: CharsetOpt = CharsetChoice.utf8,
) -> None:
    """Write a CT Image Storage series as CT000001.dcm, CT000002.dcm, ...

    Pixels are int16 with RescaleIntercept -1024, so HU = stored value - 1024.
    Slice 1 is the most superior; slices are generated and written one by one.
    """
    study = default_study(seed, f"ct-{kind.value}", charset.value)  # type: ignore[arg-type]
    series = iter_ct_series(
        kind.value,
        slices,
        seed=seed,
        study=study,
        rows=rows,
        cols=cols,
        slice_thickness=thickness,
    )
    first = _FirstHeader()
    with _progress() as progress:
        task = progress.add_task(f"CT {kind.value} {rows}x{cols}", total=slices)
        paths = write_series(
            first.watch(_maybe_compress(series, compression)),
            out,
            on_written=lambda _path: progress.advance(task),
        )
    _summary(paths, first)


@app.command("radiograph")
def radiograph_cmd(
    out: OutOpt,
    modality: Annotated[
        Modality,
        typer.Option("--modality", help="DX (Digital X-Ray For Presentation) or CR."),
    ] = Modality.DX,
    size: Annotated[int, typer.Option("--size", min=16, help="Rows and columns (square detector).")] = 2048,
    seed: SeedOpt = 0,
    monochrome1: Annotated[
        bool,
        typer.Option("--monochrome1", help="Write MONOCHROME1 (bone dark) instead of MONOCHROME2."),
    ] = False,
    compression: CompressOpt = Compression.none,
    charset: CharsetOpt = CharsetChoice.utf8,
) -> None:
    """Write one PA chest radiograph as DX000001.dcm or CR000001.dcm."""
    exam = "dx-chest" if modality is Modality.DX else "cr-chest"
    study = default_study(seed, exam, charset.value)  # type: ignore[arg-type]
    first = _FirstHeader()
    with _progress() as progress:
        task = progress.add_task(f"{modality.value} chest {size}x{size}", total=None)
        image = radiograph(
            modality.value,
            seed=seed,
            study=study,
            size=size,
            photometric="MONOCHROME1" if monochrome1 else "MONOCHROME2",
        )
        paths = write_series(first.watch(_maybe_compress([image], compression)), out)
        progress.update(task, total=1, completed=1)
    _summary(paths, first)
