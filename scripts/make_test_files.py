#!/usr/bin/env python3
"""Builds spectrain's test data and shipped sample assets from the shared real data.

Run from the repository root (deterministic: the same inputs give byte-identical
outputs; gzip streams are written with mtime 0 and no embedded file name):

    python3 scripts/make_test_files.py

Inputs (read-only): /work/shared/data/lamost/{dr10,formats}/ (override the root
with the SPECTRAIN_SHARED_DATA environment variable).

Outputs:

  tests/data/layouts/  one real file per FITS layout: DR1 image (no wavelength
                       row), DR6 image (.gz), DR7 image, DR8 image (.gz), two
                       DR10 COADD tables (.gz), one of them also gunzipped
                       (plain .fits), and a float64 (BITPIX = -64) image derived
                       from a real DR7 file by astropy (same header and values,
                       data cast to float64).
  tests/data/broken/   files that must be rejected with a clear reason:
                       truncated-half.fits      first half of the bytes of a real DR7 image
                       truncated-60pct.fits.gz  first 60% of the bytes of a real DR10 .fits.gz
                       empty.fits               zero bytes
                       not-fits.fits            a text file
                       all-nan-flux.fits.gz     a real DR10 table whose FLUX bytes are all
                                                NaN (byte-level edit, header untouched)
                       med-*.fits.gz            a real medium-resolution file (COADD_B/R)
                       wrong-shape-3rows.fits   a real DR7 image cut to 3 rows x N (astropy)
  tests/data/dr10/     12 real DR10 files (2 rejected by METHOD section 3 as
                       zero-flux, 10 kept) and labels.csv with the label rows of
                       11 of them: the 12th file is deliberately label-less.
  assets/spectra/      300 real DR10 files: every 4th name (index % 4 == 0) of the
                       sorted list of the shared dr10/spectra/ directory.
  assets/labels.csv, assets/labels-mist.csv
                       the matching rows of dr10/labels.csv and labels-mist.csv
                       (copied as text lines, same header, file order).

Uses only the Python standard library, numpy and astropy.io.fits.
"""
import gzip
import io
import os
import shutil
import sys

import numpy as np
from astropy.io import fits

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.environ.get("SPECTRAIN_SHARED_DATA", "/work/shared/data")
LAMOST = os.path.join(SHARED, "lamost")
DR10 = os.path.join(LAMOST, "dr10")
SPECTRA = os.path.join(DR10, "spectra")
FORMATS = os.path.join(LAMOST, "formats")
DATA = os.path.join(ROOT, "tests", "data")
ASSETS = os.path.join(ROOT, "assets")

DR1 = "spec-55862-B6212_sp06-003.fits"
DR6 = "spec-57287-KP193637N444141V03_sp10-161.fits.gz"
DR7 = "spec-58575-HD103621N361936B01_sp03-002.fits"
DR7_F64_SOURCE = "spec-58575-HD103621N361936B01_sp03-003.fits"
DR7_F64 = "spec-58575-HD103621N361936B01_sp03-003-f64.fits"
DR7_TRUNCATE = "spec-58575-HD103621N361936B01_sp03-005.fits"
DR7_3ROWS = "spec-58575-HD103621N361936B01_sp03-010.fits"
DR8_IMAGE = "spec-55859-F5902_sp03-232.fits.gz"
MEDIUM = "med-58646-TD192102N424113K01_sp12-076.fits.gz"
DR10_LAYOUT = [
    "spec-59517-EG025613N082253M02_sp08-200.fits.gz",
    "spec-59522-EG224840N075042B03_sp03-013.fits.gz",  # also written gunzipped
]
DR10_GUNZIP = DR10_LAYOUT[1]
DR10_TRUNCATE = "spec-59522-GACII052N48B2_sp01-129.fits.gz"
DR10_ALLNAN = "spec-59522-GACII052N48B2_sp02-080.fits.gz"

# tests/data/dr10: file -> why it is there (status under METHOD section 3).
DR10_TEST = {
    "spec-59523-GAC101N62M1_sp01-052.fits.gz": "3820 pixels, WAVELENGTH starts at 3700.0 (not 10**COEFF0), WFITTYPE = -9999",
    "spec-59676-HD120534N515552B02_sp06-185.fits.gz": "columns of unequal length: NORMALIZATION 3820E, the others 3909E",
    "spec-59644-TD064253N231249K01_sp14-103.fits.gz": "grid pixel 0 (4000 A) resamples to exactly 0 flux",
    "spec-59549-HD001644N362929V01_sp06-175.fits.gz": "23 zero-flux grid pixels, all near the blue end",
    "spec-59640-TD061156N231225K01_sp05-249.fits.gz": "72 zero-flux grid pixels (the most of any kept file), header SNRG 9.99",
    "spec-59613-TD084806N172341H01_sp05-250.fits.gz": "REJECTED zero-flux: 182 zero grid pixels (the fewest of any rejected file)",
    "spec-59637-TD064253N231249K01_sp03-004.fits.gz": "REJECTED zero-flux: 632 zero grid pixels, SNRG 731",
    "spec-59614-EG033855N024548V02_sp15-023.fits.gz": "lowest normalised std of the 1200 (0.027, still above 0.005)",
    "spec-59670-HD160623N052445B03_sp03-206.fits.gz": "hot A1 star (Teff 12222 K)",
    "spec-59665-HD153557N543750V02_sp16-134.fits.gz": "3899 pixels (shortest non-3820 length)",
    "spec-59552-TD104903N100928K01_sp06-210.fits.gz": "one of the two coolest (header SUBCLASS K0)",
}
DR10_UNLABELLED = "spec-59522-GACII052N48B2_sp02-118.fits.gz"  # row left out of labels.csv


def out(*parts):
    p = os.path.join(*parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def copy(src, dst):
    shutil.copyfile(src, out(dst))


def write_bytes(dst, data):
    with open(out(dst), "wb") as fh:
        fh.write(data)


def gzip_bytes(raw):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return buf.getvalue()


def fits_bytes(hdul):
    buf = io.BytesIO()
    hdul.writeto(buf, output_verify="exception")
    return buf.getvalue()


def read_gz(path):
    with gzip.open(path, "rb") as fh:
        return fh.read()


def label_lines(csv_path):
    with open(csv_path, newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    by_file = {}
    for line in rows:
        by_file[line.split(",", 1)[0]] = line
    return header, rows, by_file


def write_labels(dst, csv_path, files):
    header, rows, by_file = label_lines(csv_path)
    wanted = set(files)
    missing = wanted - set(by_file)
    if missing:
        sys.exit("no label rows for %s" % sorted(missing))
    # keep the original file order of the catalog
    keep = [line for line in rows if line.split(",", 1)[0] in wanted]
    with open(out(dst), "w", newline="") as fh:
        fh.write(header)
        fh.writelines(keep)
    return len(keep)


def make_layouts():
    d = os.path.join(DATA, "layouts")
    copy(os.path.join(FORMATS, DR1), os.path.join(d, DR1))
    copy(os.path.join(FORMATS, DR6), os.path.join(d, DR6))
    copy(os.path.join(FORMATS, DR7), os.path.join(d, DR7))
    copy(os.path.join(FORMATS, DR8_IMAGE), os.path.join(d, DR8_IMAGE))
    for f in DR10_LAYOUT:
        copy(os.path.join(SPECTRA, f), os.path.join(d, f))
    write_bytes(os.path.join(d, DR10_GUNZIP[: -len(".gz")]), read_gz(os.path.join(SPECTRA, DR10_GUNZIP)))
    # float64 image: same header, data cast to float64 (astropy sets BITPIX = -64)
    with fits.open(os.path.join(FORMATS, DR7_F64_SOURCE), memmap=False) as hl:
        hdr = hl[0].header.copy()
        data = np.asarray(hl[0].data, dtype=">f8")
    hdu = fits.PrimaryHDU(data=data, header=hdr)
    assert hdu.header["BITPIX"] == -64
    write_bytes(os.path.join(d, DR7_F64), fits_bytes(fits.HDUList([hdu])))


def make_broken():
    d = os.path.join(DATA, "broken")
    raw = open(os.path.join(FORMATS, DR7_TRUNCATE), "rb").read()
    write_bytes(os.path.join(d, "truncated-half.fits"), raw[: len(raw) // 2])
    gz = open(os.path.join(SPECTRA, DR10_TRUNCATE), "rb").read()
    write_bytes(os.path.join(d, "truncated-60pct.fits.gz"), gz[: len(gz) * 6 // 10])
    write_bytes(os.path.join(d, "empty.fits"), b"")
    write_bytes(os.path.join(d, "not-fits.fits"),
                b"This is a plain text file with a .fits name.\n"
                b"It is not FITS: there is no SIMPLE card and no 2880-byte header block.\n")
    # all-NaN flux: edit the FLUX bytes of the COADD row in place, keep every header byte
    raw = read_gz(os.path.join(SPECTRA, DR10_ALLNAN))
    with fits.open(io.BytesIO(raw), memmap=False) as hl:
        info = hl.fileinfo(1)
        cols = hl[1].columns
        assert cols.names[0] == "FLUX" and cols[0].format.recformat.endswith("f4")
        n = hl[1].data["FLUX"][0].size
        start = info["datLoc"]
    nan = np.full(n, np.nan, dtype=">f4").tobytes()
    edited = raw[:start] + nan + raw[start + len(nan):]
    assert len(edited) == len(raw)
    with fits.open(io.BytesIO(edited), memmap=False) as hl:
        assert np.all(np.isnan(hl[1].data["FLUX"][0]))
        assert np.array_equal(hl[1].data["IVAR"][0], fits.getdata(io.BytesIO(raw), 1)["IVAR"][0])
    write_bytes(os.path.join(d, "all-nan-flux.fits.gz"), gzip_bytes(edited))
    copy(os.path.join(FORMATS, MEDIUM), os.path.join(d, MEDIUM))
    # wrong shape: a real 5 x N image cut to its first 3 rows (astropy rewrites NAXIS2)
    with fits.open(os.path.join(FORMATS, DR7_3ROWS), memmap=False) as hl:
        hdr = hl[0].header.copy()
        data = np.array(hl[0].data[:3])
    hdu = fits.PrimaryHDU(data=data, header=hdr)
    assert hdu.header["NAXIS2"] == 3
    write_bytes(os.path.join(d, "wrong-shape-3rows.fits"), fits_bytes(fits.HDUList([hdu])))


def make_dr10():
    d = os.path.join(DATA, "dr10")
    files = sorted(DR10_TEST) + [DR10_UNLABELLED]
    for f in files:
        copy(os.path.join(SPECTRA, f), os.path.join(d, f))
    n = write_labels(os.path.join(d, "labels.csv"), os.path.join(DR10, "labels.csv"), DR10_TEST)
    assert n == len(DR10_TEST)


def make_assets():
    names = sorted(f for f in os.listdir(SPECTRA) if f.endswith(".fits.gz"))
    pick = [f for i, f in enumerate(names) if i % 4 == 0]
    d = os.path.join(ASSETS, "spectra")
    if os.path.isdir(d):
        for f in os.listdir(d):  # only our own copies live here
            if f.endswith(".fits.gz") and f not in pick:
                os.remove(os.path.join(d, f))
    for f in pick:
        copy(os.path.join(SPECTRA, f), os.path.join(d, f))
    n1 = write_labels(os.path.join(ASSETS, "labels.csv"), os.path.join(DR10, "labels.csv"), pick)
    n2 = write_labels(os.path.join(ASSETS, "labels-mist.csv"), os.path.join(DR10, "labels-mist.csv"), pick)
    assert n1 == n2 == len(pick), (n1, n2, len(pick))
    return len(pick)


def main():
    make_layouts()
    make_broken()
    make_dr10()
    n = make_assets()
    for sub in ("layouts", "broken", "dr10"):
        p = os.path.join(DATA, sub)
        size = sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p))
        print("tests/data/%s: %d files, %d bytes" % (sub, len(os.listdir(p)), size))
    print("assets/spectra: %d files" % n)


if __name__ == "__main__":
    main()
