#!/usr/bin/env bash
# Fetch the MIST v2.5 (v/vcrit=0.4) isochrone grid shipped in the PyPI package
# `lachesis-grids` and print the path of the HDF5 file.
#
#   scripts/fetch_mist.sh [DEST_DIR]      (default: data/mist)
#
# Idempotent: the wheel is downloaded only if missing or its sha256 does not
# match, and unpacked only if the grid is not there yet. Needs PyPI access.
# Then:  python3 scripts/mist_table.py "$(scripts/fetch_mist.sh | tail -1)" --out mist.csv
set -euo pipefail

VERSION="0.0.9"
WHEEL="lachesis_grids-${VERSION}-py3-none-any.whl"
SHA256="87e2bb19abf65f701c20805ed6daab7411d287ef14667d9a1a111675b2638907"
GRID_IN_WHEEL="lachesis_grids/grids/mist_v2.5_vvcrit0.4.h5"

DEST="${1:-data/mist}"
mkdir -p "$DEST"
ARCHIVE="$DEST/$WHEEL"

sha_ok() { [ -f "$ARCHIVE" ] && echo "$SHA256  $ARCHIVE" | sha256sum -c --status -; }

if ! sha_ok; then
    rm -f "$ARCHIVE"
    echo "downloading lachesis-grids==$VERSION into $DEST" >&2
    python3 -m pip download "lachesis-grids==$VERSION" --no-deps --only-binary=:all: \
        -d "$DEST" >&2
    if ! sha_ok; then
        echo "error: sha256 mismatch for $ARCHIVE (expected $SHA256)" >&2
        sha256sum "$ARCHIVE" >&2 || true
        exit 1
    fi
fi

GRID="$DEST/$GRID_IN_WHEEL"
if [ ! -f "$GRID" ]; then
    echo "unpacking $ARCHIVE" >&2
    # a wheel is a zip; use python so no `unzip` binary is needed
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$ARCHIVE" "$DEST"
fi

if ! python3 -c 'import h5py' 2>/dev/null; then
    echo "h5py not importable; installing it with pip --user" >&2
    python3 -m pip install --user h5py >&2
fi

# Sanity check: the file opens and has the layout mist_table.py expects.
python3 - "$GRID" >&2 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["grid_name"] == "MIST", f.attrs["grid_name"]
    for k in ("feh_values", "age_values", "eep_values", "lengths", "offsets", "values"):
        assert k in f, k
    print("MIST grid ok: shape (feh, age, eep, col) =", tuple(int(n) for n in f.attrs["shape"]),
          "rows stored:", f["values"].shape[0])
EOF

ls "$DEST"/lachesis_grids/grids/*.h5 | sed 's/^/grid in wheel: /' >&2
echo "MIST grid:" >&2
echo "$GRID"
