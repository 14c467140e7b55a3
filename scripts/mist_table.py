#!/usr/bin/env python3
"""Turn the MIST v2.5 isochrone grid (HDF5 from `lachesis-grids`) into a CSV table.

    python3 scripts/mist_table.py GRID.h5 --out mist.csv [--feh 0.0 | --feh-range -0.5 0.5]
        [--phases -1 0 2] [--max-rows 20000] [--seed 0]

GRID.h5 is what scripts/fetch_mist.sh prints. Its layout ("sparse_v1"):
  feh_values (15,), age_values (107,) [log10 yr], eep_values (1722,);
  one block per (feh, age) pair, feh-major (block k -> feh index k // n_age,
  age index k % n_age); block k holds `lengths[k]` consecutive EEPs starting at
  eep_values[offsets[k]]; blocks are concatenated in `values` (N, 16), whose
  columns are listed in the root attribute `columns`. Rows of NaN are gaps.

Output columns (one row per isochrone point, rows sorted by feh, age, EEP):
  log_teff       log10 effective temperature [K]
  log_l          log10 bolometric luminosity [Lsun]
  logg           log10 surface gravity [cgs, cm s^-2]
  feh            initial [Fe/H] of the isochrone [dex]
  log_age        log10 age [yr]
  log_mass       log10 current stellar mass [Msun] (MIST `star_mass`)
  log_mass_init  log10 initial mass [Msun] (MIST `initial_mass`; equal to
                 log_mass except where mass loss matters: massive stars, upper RGB)
  log_r          log10 radius [Rsun]
  teff           effective temperature [K]
  eep            MIST equivalent evolutionary point (1 PMS start, 202 ZAMS,
                 454 TAMS, 605 RGB tip, 631 ZAHB, 707 TAHB, 808 TP-AGB, ...)
  phase          MIST phase: -1 pre-MS, 0 MS, 2 subgiant+RGB, 3 core-He burning,
                 4 early AGB, 5 TP-AGB, 6 post-AGB/WD, 9 Wolf-Rayet
                 (-9 marks the last EEP, cool white dwarfs, in this file)

Defaults follow the StelNet setup: solar metallicity (--feh 0.0), phases
pre-MS, MS and subgiant/RGB (-1 0 2), no CHeB/AGB/post-AGB/WD/WR points; add
3 to --phases to cover red-clump giants. If more than --max-rows points pass
the cuts, a uniform random subset is drawn with numpy's default_rng(--seed),
so the same arguments always give the same file. --max-rows 0 keeps all rows.
"""
import argparse

import h5py
import numpy as np
import pandas as pd


def load_grid(path):
    """All grid points as a DataFrame of the raw MIST columns plus `feh`."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("storage") != "sparse_v1":
            raise SystemExit(f"unexpected storage layout {f.attrs.get('storage')!r}")
        cols = [str(c) for c in f.attrs["columns"]]
        feh_values, age_values = f["feh_values"][:], f["age_values"][:]
        lengths = f["lengths"][:]
        values = f["values"][:]
    if len(lengths) != len(feh_values) * len(age_values) or lengths.sum() != len(values):
        raise SystemExit("grid blocks do not match feh x age layout")
    block = np.repeat(np.arange(len(lengths)), lengths)
    df = pd.DataFrame(values.astype(np.float64), columns=cols)
    df["feh"] = feh_values[block // len(age_values)]
    grid_age = age_values[block % len(age_values)]
    df = df[df["eep"].notna()]  # drop NaN gap rows
    if not np.allclose(df["age"], grid_age[df.index]):
        raise SystemExit("age column disagrees with block order; layout changed?")
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid", help="MIST HDF5 grid (from scripts/fetch_mist.sh)")
    ap.add_argument("--out", required=True, help="output CSV path")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--feh", type=float, help="single [Fe/H] grid value (default 0.0)")
    g.add_argument("--feh-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="keep all grid [Fe/H] values in [LO, HI]")
    ap.add_argument("--phases", type=int, nargs="+", default=[-1, 0, 2],
                    help="MIST phases to keep (default: -1 0 2 = pre-MS, MS, RGB)")
    ap.add_argument("--log-age-range", type=float, nargs=2, metavar=("LO", "HI"),
                    help="keep log10 age [yr] in [LO, HI]")
    ap.add_argument("--logg-range", type=float, nargs=2, metavar=("LO", "HI"),
                    help="keep log g [cgs] in [LO, HI]")
    ap.add_argument("--max-mass", type=float, help="keep initial mass <= this [Msun]")
    ap.add_argument("--max-rows", type=int, default=20000, help="0 = no limit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    df = load_grid(args.grid)
    grid_feh = np.unique(df["feh"])
    if args.feh_range is not None:
        lo, hi = args.feh_range
        keep_feh = df["feh"].between(lo - 1e-9, hi + 1e-9)
    else:
        feh = 0.0 if args.feh is None else args.feh
        if not np.isclose(grid_feh, feh).any():
            raise SystemExit(f"--feh {feh} not on grid; grid values: {grid_feh.tolist()}")
        keep_feh = np.isclose(df["feh"], feh)
    df = df[keep_feh & df["phase"].isin(args.phases)]
    if args.log_age_range is not None:
        df = df[df["age"].between(*args.log_age_range)]
    if args.logg_range is not None:
        df = df[df["log_g"].between(*args.logg_range)]
    if args.max_mass is not None:
        df = df[df["initial_mass"] <= args.max_mass]
    if df.empty:
        raise SystemExit("no grid points pass the cuts")

    n_all = len(df)
    if args.max_rows and n_all > args.max_rows:
        rng = np.random.default_rng(args.seed)
        df = df.iloc[np.sort(rng.choice(n_all, args.max_rows, replace=False))]

    out = pd.DataFrame({
        "log_teff": df["log_Teff"],
        "log_l": df["log_L"],
        "logg": df["log_g"],
        "feh": df["feh"],
        "log_age": df["age"],
        "log_mass": np.log10(df["star_mass"]),
        "log_mass_init": np.log10(df["initial_mass"]),
        "log_r": df["log_R"],
        "teff": df["Teff"],
        "eep": df["eep"].round().astype(int),
        "phase": df["phase"].round().astype(int),
    })
    out.to_csv(args.out, index=False, float_format="%.7g")
    print(f"wrote {len(out)} of {n_all} selected rows to {args.out} "
          f"(feh {sorted(out['feh'].unique().tolist())}, phases {sorted(out['phase'].unique().tolist())})")


if __name__ == "__main__":
    main()
