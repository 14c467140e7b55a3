#!/usr/bin/env python3
"""Write clean CSV tables from the stellar catalogs in /work/shared/data/catalogs.

    python3 scripts/catalog_tables.py --out-dir DIR [--catalogs /work/shared/data/catalogs]

Column names match scripts/mist_table.py (log_teff, log_l, logg, feh, log_age,
log_mass); all log10, Teff in K, L in Lsun, g in cgs, age in yr, mass in Msun.
Missing values are written as empty cells; no row is dropped.

dh_postzams.csv     Data_postZAMS_DH.csv (David & Hillenbrand 2015 early-type
                    field stars, HIP ids). Source ages are in Myr (Ageavg);
                    Age is in yr and logAge = log10(Age/yr); logMass = log10(Mavg).
                    Columns: id (HIP), teff, teff_err, log_teff, log_l, logg,
                    logg_err, log_age, log_age_err, log_mass, log_mass_err,
                    log_age_68lo, log_age_68up, log_mass_68lo, log_mass_68up.
                    log_*_err are the catalog's (lower-side 68%) errors in dex;
                    the 68% bounds come from Age68lo/up (Myr) and M68lo/up.
onc_prezams.csv     Data_preZAMS_ONC.csv (Name, logTeff, logLum, Mass, logAge
                    [log10 yr], logMass). Columns: id, log_teff, log_l, log_age, log_mass.
ngc6530_prezams.csv Data_preZAMS_ngc6530.csv (Age in Myr, logAge = log10 yr,
                    Lbol in Lsun, Teff = T/Tsun * 5771 K). Columns: id
                    (ngc6530-<row>, 0-based), teff, log_teff, log_l, log_age,
                    log_mass, radius (Rsun).
apokasc_giants.csv  apokasc_all_ages.txt (whitespace separated, '#' header;
                    max_age in Gyr). Columns: id (2MASS), teff, teff_err,
                    log_teff, logg (seismic), logg_err, feh, feh_err, m_h,
                    alpha_fe, alpha_fe_err, age_gyr, log_age (log10 yr).
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def dh(src):
    d = pd.read_csv(src / "Data_postZAMS_DH.csv")
    return pd.DataFrame({
        "id": d["HIP"],
        "teff": d["Teff"],
        "teff_err": d["e_Teff"],
        "log_teff": d["logTeff"],
        "log_l": d["logLum"],
        "logg": d["log(g)"],
        "logg_err": d["e_log(g)"],
        "log_age": d["logAge"],
        "log_age_err": d["logAge_err"],
        "log_mass": d["logMass"],
        "log_mass_err": d["logMass_err"],
        "log_age_68lo": np.log10(d["Age68lo"] * 1e6),
        "log_age_68up": np.log10(d["Age68up"] * 1e6),
        "log_mass_68lo": np.log10(d["M68lo"]),
        "log_mass_68up": np.log10(d["M68up"]),
    })


def onc(src):
    d = pd.read_csv(src / "Data_preZAMS_ONC.csv", dtype={"Name": str})
    return pd.DataFrame({
        "id": d["Name"],
        "log_teff": d["logTeff"],
        "log_l": d["logLum"],
        "log_age": d["logAge"],
        "log_mass": d["logMass"],
    })


def ngc6530(src):
    d = pd.read_csv(src / "Data_preZAMS_ngc6530.csv")
    return pd.DataFrame({
        "id": [f"ngc6530-{i}" for i in range(len(d))],
        "teff": d["Teff"],
        "log_teff": d["logTeff"],
        "log_l": d["logLum"],
        "log_age": d["logAge"],
        "log_mass": d["logMass"],
        "radius": d["Rad"],
    })


def apokasc(src):
    path = src / "apokasc_all_ages.txt"
    with open(path) as f:
        names = f.readline().lstrip("#").split()
    d = pd.read_csv(path, sep=r"\s+", comment="#", names=names, header=None)
    return pd.DataFrame({
        "id": d["2MASS_ID"],
        "teff": d["Teff"],
        "teff_err": d["Teff_err"],
        "log_teff": np.log10(d["Teff"]),
        "logg": d["seismic_logg"],
        "logg_err": d["seismic_logg_err"],
        "feh": d["FeH"],
        "feh_err": d["FeH_err"],
        "m_h": d["MH"],
        "alpha_fe": d["AlphaFe"],
        "alpha_fe_err": d["AlphaFe_err"],
        "age_gyr": d["max_age"],
        "log_age": np.log10(d["max_age"] * 1e9),
    })


TABLES = {
    "dh_postzams.csv": dh,
    "onc_prezams.csv": onc,
    "ngc6530_prezams.csv": ngc6530,
    "apokasc_giants.csv": apokasc,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--catalogs", type=Path, default=Path("/work/shared/data/catalogs"))
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, build in TABLES.items():
        t = build(args.catalogs)
        if not t["id"].is_unique:
            raise SystemExit(f"{name}: duplicate ids")
        t.to_csv(args.out_dir / name, index=False, float_format="%.8g")
        missing = {c: int(n) for c, n in t.isna().sum().items() if n}
        print(f"{name}: {len(t)} rows; missing: {missing or 'none'}")


if __name__ == "__main__":
    main()
