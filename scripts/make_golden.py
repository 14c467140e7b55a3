#!/usr/bin/env python3
"""Golden values for spectrain's tests, computed with independent Python libraries.

Run from the repository root, after `python3 scripts/make_test_files.py`:

    python3 scripts/make_golden.py

It reads the real FITS files under tests/data/ and writes five JSON fixtures
under tests/fixtures/. Floats are written with Python's repr (shortest string
that round-trips the value exactly); nothing is rounded. Where a value is a
float32 result (the preprocess outputs) it is written as the shortest decimal
that round-trips to that exact float32. Paths in the fixtures are relative to
the repository root.

  fits_golden.json        header fields and flux / ivar / wavelength at a few
                          pixels of every file in tests/data/layouts/.
                          Source: astropy.io.fits (values cast to float64).
                          Wavelength: the WAVELENGTH column (DR8+ tables),
                          image row 2 (DR2-DR8 images), or
                          10**(COEFF0 + COEFF1*i) in float64 for DR1 images
                          (whose row 2 is continuum-normalised flux).
  haar_golden.json        Haar wavelet decomposition / soft thresholding /
                          reconstruction of real normalised spectra.
                          Source: PyWavelets (pywt.wavedec, pywt.threshold,
                          pywt.waverec, default mode "symmetric").
  preprocess_golden.json  METHOD.md section 3 steps 1-6 (rest frame, linear
                          resampling onto 4000..8095 A, zero-flux / flat /
                          low-std rejection, min-max normalisation, Haar
                          denoise) for every file in tests/data/dr10/ and
                          tests/data/layouts/. Sources: astropy (reading),
                          numpy.interp (resampling), PyWavelets (denoise).
  median_golden.json      width-3 median filter of 2 real normalised spectra.
                          Source: scipy.ndimage.median_filter(size=3,
                          mode="nearest").
  continuum_golden.json   iterative 6th-order polynomial pseudo-continuum of
                          real (not normalised) resampled spectra.
                          Source: numpy.polynomial.polynomial.polyfit/polyval.

Extra mode (used to check the whole shared DR10 set, writes no fixture):

    python3 scripts/make_golden.py --status DIR OUT.csv

writes OUT.csv with columns file,status for every *.fits* file in DIR, using
the same preprocessing code ("error: <reason>" when a file cannot be read).

This is an independent implementation written for the tests; it does not
import /work/shared/reference/preprocess.py.
"""
import glob
import gzip
import json
import os
import sys

import numpy as np
import pywt
from astropy.io import fits

GRID_START = 4000.0
GRID_LEN = 4096
GRID = GRID_START + np.arange(GRID_LEN, dtype=np.float64)
ZERO_FLUX_LIMIT = 100
LOW_STD_LIMIT = 0.005
HAAR_FRACTION = 0.05
HAAR_LEVEL = pywt.dwt_max_level(GRID_LEN, pywt.Wavelet("haar").dec_len)  # 12

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(ROOT, "tests", "data")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


# --------------------------------------------------------------------------
# Reading (astropy)
# --------------------------------------------------------------------------

def _looks_like_wavelengths(row):
    """True when an image row is a strictly increasing optical wavelength array.

    DR2-DR8 images store wavelengths (~3700..9100 A) in row 2; DR1 images
    store the continuum-normalised flux (~1.0) there instead.
    """
    row = np.asarray(row, dtype=np.float64)
    return bool(np.all(np.isfinite(row)) and np.all(np.diff(row) > 0)
                and row[0] > 1000.0 and row[-1] < 100000.0)


def read_spectrum(path):
    """Read a LAMOST low-resolution spectrum with astropy.

    Returns a dict: layout ("table" | "image"), wavelength_source
    ("column" | "row2" | "coeff"), header (dict: primary header keys first,
    then COADD table header keys not already present), wave, flux, ivar
    (float64 arrays).
    """
    with fits.open(path, memmap=False) as hl:
        h0 = hl[0].header
        data0 = hl[0].data
        if data0 is not None and data0.ndim == 2:
            if data0.shape[0] != 5:  # METHOD section 2: 5 rows x N
                raise ValueError("image has %d rows, expected 5" % data0.shape[0])
            data = np.asarray(data0, dtype=np.float64)
            header = {k: v for k, v in h0.items() if k not in ("COMMENT", "HISTORY", "")}
            flux, ivar = data[0].copy(), data[1].copy()
            if _looks_like_wavelengths(data[2]):
                wave, src = data[2].copy(), "row2"
            else:
                n = flux.size
                wave = 10.0 ** (float(h0["COEFF0"]) + float(h0["COEFF1"]) * np.arange(n, dtype=np.float64))
                src = "coeff"
            return dict(layout="image", wavelength_source=src, header=header,
                        wave=wave, flux=flux, ivar=ivar)
        names = [h.name for h in hl]
        if "COADD" not in names:
            raise ValueError("no COADD table and no 2-D primary image (HDUs: %s)" % names)
        tab = hl["COADD"]
        header = {k: v for k, v in h0.items() if k not in ("COMMENT", "HISTORY", "")}
        for k, v in tab.header.items():
            if k not in ("COMMENT", "HISTORY", "") and k not in header:
                header[k] = v
        row = tab.data[0]
        return dict(layout="table", wavelength_source="column", header=header,
                    wave=np.asarray(row["WAVELENGTH"], dtype=np.float64),
                    flux=np.asarray(row["FLUX"], dtype=np.float64),
                    ivar=np.asarray(row["IVAR"], dtype=np.float64))


# --------------------------------------------------------------------------
# Preprocessing (METHOD.md section 3)
# --------------------------------------------------------------------------

def haar_coeffs(x, level):
    return pywt.wavedec(np.asarray(x, dtype=np.float64), "haar", level=level)


def haar_threshold(coeffs, fraction=HAAR_FRACTION, stats=None):
    """Soft-threshold every detail array with T = fraction * np.max(c) (signed max).

    pywt.threshold computes w * clip(1 - T/|w|, 0): for w == 0 and T <= 0 that is
    0 * (1 - 0/0) = NaN. That happens whenever a level's details are all <= 0 and
    one is exactly 0 - routinely with odd lengths, where the symmetric padding
    makes the last detail coefficient of a level exactly 0. METHOD's formula
    sign(w) * max(|w| - T, 0) gives 0 there, so those entries are set to 0
    (counted in stats["pywt_nan"]); every other value is pywt's.
    """
    out = [coeffs[0]]
    for c in coeffs[1:]:
        with np.errstate(invalid="ignore"):
            t = pywt.threshold(c, fraction * np.max(c), mode="soft")
        bad = np.isnan(t) & (c == 0)
        if stats is not None:
            stats["pywt_nan"] = stats.get("pywt_nan", 0) + int(bad.sum())
        t[bad] = 0.0
        out.append(t)
    return out


def haar_denoise(x, level=HAAR_LEVEL, fraction=HAAR_FRACTION, stats=None):
    x = np.asarray(x, dtype=np.float64)
    rec = pywt.waverec(haar_threshold(haar_coeffs(x, level), fraction, stats), "haar")
    rec = rec[: x.size]
    assert np.all(np.isfinite(rec))
    return rec


def resample(spec, rest_frame=True):
    """Steps 1-2: rest frame, then linear interpolation onto GRID (0 outside)."""
    wave, flux = spec["wave"], spec["flux"]
    z = spec["header"].get("Z")
    if rest_frame and isinstance(z, (int, float)) and not isinstance(z, bool):
        z = float(z)
        if np.isfinite(z) and abs(z) < 0.1:
            wave = wave / (1.0 + z)
    good = np.isfinite(flux) & np.isfinite(wave)
    if not good.any():
        raise ValueError("no finite flux")
    return np.interp(GRID, wave[good], flux[good], left=0.0, right=0.0)


def normalise(f):
    """Steps 3-5 on a resampled spectrum. Returns (status, normalised or None)."""
    if np.count_nonzero(f == 0) >= ZERO_FLUX_LIMIT:
        return "zero-flux", None
    lo, hi = f.min(), f.max()
    if not hi > lo:
        return "flat", None
    f = (f - lo) / (hi - lo)
    if f.std() < LOW_STD_LIMIT:
        return "low-std", None
    return "ok", f


def preprocess(path):
    """Steps 1-6. Returns (status, float32 array or None)."""
    spec = read_spectrum(path)
    status, f = normalise(resample(spec))
    if f is None:
        return status, None
    return "ok", haar_denoise(f).astype(np.float32)


# --------------------------------------------------------------------------
# Alternatives (LASSO-MLPNet)
# --------------------------------------------------------------------------

CONT_ITER, CONT_DEG, CONT_LO, CONT_HI = 5, 6, 1.0, 3.0


def pseudo_continuum(f, wave=GRID):
    """Iterative sigma-clipped degree-6 polynomial; 5 mask updates, 6 fits."""
    from numpy.polynomial import polynomial as P
    f = np.asarray(f, dtype=np.float64)
    t = 2.0 * (wave - wave[0]) / (wave[-1] - wave[0]) - 1.0
    base = (f != 0) & np.isfinite(f)
    mask = base
    for _ in range(CONT_ITER):
        coef = P.polyfit(t[mask], f[mask], CONT_DEG)
        cont = P.polyval(t, coef)
        r = f - cont
        s = np.std(r[mask])
        mask = base & (r > -CONT_LO * s) & (r < CONT_HI * s)
    coef = P.polyfit(t[mask], f[mask], CONT_DEG)
    cont = P.polyval(t, coef)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((cont > 0) & base, f / cont, 0.0)
    return cont, out


# --------------------------------------------------------------------------
# Fixture writing
# --------------------------------------------------------------------------

def rel(path):
    return os.path.relpath(os.path.abspath(path), ROOT).replace(os.sep, "/")


def fl(a):
    """float64 list (json writes repr: exact)."""
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


class _F32(float):
    """A float written as the shortest decimal that round-trips to its float32."""

    def __repr__(self):
        return np.format_float_positional(np.float32(self), unique=True, trim="0") \
            if 1e-4 <= abs(self) < 1e16 or self == 0 else \
            np.format_float_scientific(np.float32(self), unique=True, trim="0")


def f32list(a):
    return [_F32(float(v)) for v in np.asarray(a, dtype=np.float32).ravel()]


def _encode(obj):
    if isinstance(obj, dict):
        return "{" + ", ".join(json.dumps(k) + ": " + _encode(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        if obj and all(isinstance(v, float) for v in obj):
            # one flat line per numeric array keeps the files diffable
            return "[" + ",".join(_num(v) for v in obj) + "]"
        return "[" + ", ".join(_encode(v) for v in obj) + "]"
    if isinstance(obj, float):
        return _num(obj)
    return json.dumps(obj)


def _num(v):
    if not np.isfinite(v):
        raise ValueError("non-finite value in fixture")
    s = repr(v)
    # sanity: the text must parse back to the value it stands for
    if isinstance(v, _F32):
        assert np.float32(float(s)) == np.float32(v), (s, v)
    else:
        assert float(s) == float(v), (s, v)
    return s


def write_json(name, obj):
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, name)
    text = _encode(obj)
    json.loads(text)  # valid JSON
    with open(path, "w") as fh:
        fh.write(text + "\n")
    print("wrote %s (%d bytes)" % (rel(path), len(text) + 1))


def _hget(h, *keys):
    for k in keys:
        if k in h:
            return h[k]
    return None


def _num_or_none(v):
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return None


def _str_or_none(v):
    return None if v is None else str(v).strip()


def layout_files():
    return sorted(glob.glob(os.path.join(DATA, "layouts", "*.fits*")))


def dr10_files():
    return sorted(glob.glob(os.path.join(DATA, "dr10", "*.fits*")))


def fits_golden():
    files = []
    for path in layout_files():
        s = read_spectrum(path)
        h = s["header"]
        n = s["flux"].size
        pix = [0, 1, 100, n // 2, n - 1]
        obsid = h.get("OBSID")
        files.append({
            "path": rel(path),
            "layout": s["layout"],
            "wavelength_source": s["wavelength_source"],
            "data_v": _str_or_none(h.get("DATA_V")),
            "n": n,
            "obsid": int(obsid) if obsid is not None else None,
            "z": _num_or_none(h.get("Z")),
            "snrg": _num_or_none(_hget(h, "SNRG", "SN_G")),
            "ra": _num_or_none(h.get("RA")),
            "dec": _num_or_none(h.get("DEC")),
            "class": _str_or_none(h.get("CLASS")),
            "subclass": _str_or_none(h.get("SUBCLASS")),
            "pixels": pix,
            "flux": fl(s["flux"][pix]),
            "ivar": fl(s["ivar"][pix]),
            "wavelength": fl(s["wave"][pix]),
        })
    write_json("fits_golden.json", {
        "source": "astropy.io.fits; values cast to float64; header = primary "
                  "keys first, then COADD table keys not already present; "
                  "wavelength from the WAVELENGTH column (tables), image row 2 "
                  "(DR2-DR8 images) or 10**(COEFF0 + COEFF1*i) (DR1 images)",
        "files": files})


def normalised_input(path):
    """Steps 1-4 of METHOD section 3 (must be kept by the zero-flux cut)."""
    status, f = normalise(resample(read_spectrum(path)))
    assert status == "ok", (path, status)
    return f


# Real spectra used for the Haar / median / continuum cases (all in tests/data/).
HAAR_SOURCES = [
    "tests/data/dr10/spec-59523-GAC101N62M1_sp01-052.fits.gz",          # 3820-px table, G6, SNRG 15
    "tests/data/dr10/spec-59549-HD001644N362929V01_sp06-175.fits.gz",   # F5, zero-flux pixels near the blue end
    "tests/data/layouts/spec-58575-HD103621N361936B01_sp03-002.fits",   # DR7 image, K5
]
HAAR_ODD_LEN = 2049  # odd at every level: 2049, 1025, 513, ..., 3


def haar_golden(sources):
    cases = []

    def case(name, src, x, level):
        coeffs = haar_coeffs(x, level)
        stats = {}
        out = pywt.waverec(haar_threshold(coeffs, HAAR_FRACTION, stats), "haar")[: len(x)]
        assert np.all(np.isfinite(out)), name
        cases.append({"name": name, "source": src, "wavelet": "haar", "mode": "symmetric",
                      "level": level, "fraction": HAAR_FRACTION,
                      "pywt_nan_zeroed": stats.get("pywt_nan", 0),
                      "input": fl(x), "coeffs": [fl(c) for c in coeffs], "output": fl(out)})

    inputs = []
    for i, src in enumerate(sources):
        x = normalised_input(os.path.join(ROOT, src))
        inputs.append(x)
        case("spectrum%d_4096_level12" % i, src, x, pywt.dwt_max_level(x.size, 2))
    odd = inputs[0][:HAAR_ODD_LEN]
    odd_level = pywt.dwt_max_level(HAAR_ODD_LEN, 2)
    case("spectrum0_first%d_level%d" % (HAAR_ODD_LEN, odd_level), sources[0], odd, odd_level)
    case("spectrum1_4096_level5", sources[1], inputs[1], 5)
    write_json("haar_golden.json", {
        "source": "PyWavelets %s: coeffs = pywt.wavedec(input, 'haar', mode='symmetric', level) "
                  "(order [cA_level, cD_level, ..., cD_1], before thresholding); each detail "
                  "array c is replaced by pywt.threshold(c, fraction*np.max(c), mode='soft') "
                  "(signed max); output = pywt.waverec(...)[:len(input)]. Exception: where a detail "
                  "coefficient is exactly 0 and T <= 0, pywt.threshold returns NaN (0*(1-0/0)); "
                  "the fixture uses 0 there (= sign(w)*max(|w|-T,0)); pywt_nan_zeroed counts "
                  "them per case (odd lengths: symmetric padding makes the last detail of each "
                  "odd-length level exactly 0). Inputs: real spectra resampled onto "
                  "4000..8095 A and min-max normalised." % pywt.__version__,
        "cases": cases})


def preprocess_golden():
    files = []
    for path in dr10_files() + layout_files():
        status, out = preprocess(path)
        files.append({"path": rel(path), "status": status,
                      "output": f32list(out) if out is not None else None})
    write_json("preprocess_golden.json", {
        "grid_start": GRID_START, "grid_len": GRID_LEN,
        "zero_flux_limit": ZERO_FLUX_LIMIT, "low_std_limit": LOW_STD_LIMIT,
        "haar_level": HAAR_LEVEL, "haar_fraction": HAAR_FRACTION,
        "output_encoding": "float32 values, each written as the shortest decimal that "
                           "round-trips to that float32 (parse as f32 for exact equality)",
        "source": "own implementation of METHOD.md section 3 steps 1-6: astropy read, "
                  "wave/(1+Z) when Z finite and |Z|<0.1, numpy.interp(GRID, wave[good], "
                  "flux[good], left=0, right=0), reject count(f==0)>=100 'zero-flux', "
                  "'flat' when not max>min, min-max normalise, 'low-std' when std<0.005, "
                  "PyWavelets Haar denoise level 12 fraction 0.05, cast to float32. Image "
                  "wavelengths come from row 2 (DR2-DR8) or COEFF0/COEFF1 (DR1).",
        "files": files})


def median_golden(sources):
    from scipy import ndimage
    import scipy
    cases = []
    for src in sources:
        x = normalised_input(os.path.join(ROOT, src))
        y = ndimage.median_filter(x, size=3, mode="nearest")
        cases.append({"source": src, "input": fl(x), "output": fl(y)})
    write_json("median_golden.json", {
        "source": "scipy %s: scipy.ndimage.median_filter(x, size=3, mode='nearest'); inputs are "
                  "real spectra resampled onto 4000..8095 A and min-max normalised" % scipy.__version__,
        "size": 3, "mode": "nearest", "cases": cases})


def continuum_golden(sources):
    cases = []
    for src in sources:
        f = resample(read_spectrum(os.path.join(ROOT, src)))
        cont, out = pseudo_continuum(f)
        assert np.all(np.isfinite(cont)) and np.all(np.isfinite(out))
        cases.append({"source": src, "zero_pixels": int(np.count_nonzero(f == 0)),
                      "input": fl(f), "continuum": fl(cont), "output": fl(out)})
    write_json("continuum_golden.json", {
        "source": "numpy %s numpy.polynomial.polynomial.polyfit/polyval. t = 2*(GRID-GRID[0])/"
                  "(GRID[-1]-GRID[0]) - 1; base = (f != 0) & isfinite(f); mask = base; repeat "
                  "`iterations` times: coef = polyfit(t[mask], f[mask], degree); cont = "
                  "polyval(t, coef); r = f - cont; s = std(r[mask]) (ddof=0); mask = base & "
                  "(r > -lower_sigma*s) & (r < upper_sigma*s). Then one final fit on the last "
                  "mask gives cont (iterations mask updates, iterations+1 fits). output = "
                  "where((cont > 0) & base, f/cont, 0). Inputs: real spectra resampled onto "
                  "the grid (rest frame), not normalised." % np.__version__,
        "grid_start": GRID_START, "grid_len": GRID_LEN,
        "iterations": CONT_ITER, "degree": CONT_DEG,
        "lower_sigma": CONT_LO, "upper_sigma": CONT_HI, "cases": cases})


def status_csv(directory, out_csv):
    import csv
    paths = sorted(p for p in glob.glob(os.path.join(directory, "*")) if ".fits" in os.path.basename(p))
    counts = {}
    with open(out_csv, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "status"])
        for p in paths:
            try:
                status, _ = preprocess(p)
            except Exception as e:  # noqa: BLE001 - report, never drop
                status = "error: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__)
            counts[status] = counts.get(status, 0) + 1
            w.writerow([os.path.basename(p), status])
    print(out_csv, len(paths), counts)


def main(argv):
    if len(argv) == 4 and argv[1] == "--status":
        status_csv(argv[2], argv[3])
        return
    if len(argv) != 1:
        sys.exit(__doc__)
    fits_golden()
    haar_golden(HAAR_SOURCES)
    preprocess_golden()
    median_golden(MEDIAN_SOURCES)
    continuum_golden(CONTINUUM_SOURCES)


MEDIAN_SOURCES = [
    "tests/data/dr10/spec-59670-HD160623N052445B03_sp03-206.fits.gz",   # A1, deep Balmer lines
    "tests/data/dr10/spec-59640-TD061156N231225K01_sp05-249.fits.gz",   # F0, SNRG 10, 72 zero pixels
]
CONTINUUM_SOURCES = [
    "tests/data/dr10/spec-59644-TD064253N231249K01_sp14-103.fits.gz",   # grid pixel 0 is zero (an end)
    "tests/data/dr10/spec-59549-HD001644N362929V01_sp06-175.fits.gz",   # 23 zeros near the blue end
    "tests/data/dr10/spec-59670-HD160623N052445B03_sp03-206.fits.gz",   # A1, no zeros
]

if __name__ == "__main__":
    main(sys.argv)
