"""The PSF study's phantom and its resolution measures (point-target FWHM, edge gradient)."""
from __future__ import annotations

import numpy as np


def psf_phantom(size: int = 256, *, seed: int = 7, dynamic_range_db: float = 50.0) -> dict:
    """A simulated linear-array B-mode (``size`` x ``size`` px over 30 x 20 mm) with a 3 x 3 grid of point
    targets (amplitude 25x) on weak speckle (echogenicity 0.3) in the upper two thirds and a lateral step edge
    (0.1 | 1.0 at x = 0) in the lower third. Returns image, pixel size (mm), point pixel positions, edge rows/column."""
    from ...physics.simulator import pulse_echo_fwhm_mm, random_scatterers, simulate_ultrasound

    z_range, x_range = (0.0, 30.0), (-10.0, 10.0)
    ech = np.full((size, size), 0.3)
    z = np.linspace(*z_range, size)
    x = np.linspace(*x_range, size)
    edge_rows = z >= 21.0
    ech[np.ix_(edge_rows, x < 0)] = 0.1
    ech[np.ix_(edge_rows, x >= 0)] = 1.0
    cell = pulse_echo_fwhm_mm()
    pos, amp = random_scatterers(ech, x_range_mm=x_range, z_range_mm=z_range, resolution_cell_mm=cell,
                                 scatterers_per_cell=10.0, margin_mm=1.5, seed=seed)
    pts = np.array([(px, pz) for pz in (5.0, 11.0, 17.0) for px in (-6.0, 0.0, 6.0)])
    sim = simulate_ultrasound(positions_mm=np.concatenate([pos, pts]),
                              amplitudes=np.concatenate([amp, np.full(len(pts), 25.0)]),
                              depth_range_mm=z_range, width_mm=20.0, image_shape=(size, size),
                              dynamic_range_db=dynamic_range_db)
    dz, dx = float(np.diff(sim.z_mm).mean()), float(np.diff(sim.x_mm).mean())
    peaks = [(int(np.argmin(abs(sim.z_mm - pz))), int(np.argmin(abs(sim.x_mm - px)))) for px, pz in pts]
    rows = np.nonzero(sim.z_mm >= 22.0)[0]
    return {"image": sim.image.astype(np.float32), "spacing": (dz, dx), "peaks": peaks,
            "edge_rows": (int(rows[0]), int(rows[-1]) - 3), "edge_col": int(np.argmin(abs(sim.x_mm)))}


def psf_measures(image: np.ndarray, ph: dict, *, dynamic_range_db: float, window: int = 14) -> dict:
    """Axial / lateral FWHM (mm) of each of the phantom's points (lists) and the peak edge gradient (per mm)."""
    from ...metrics.quality import fwhm, peak_edge_gradient

    env = 10 ** (dynamic_range_db * (np.asarray(image, np.float64) - 1) / 20)  # display -> linear envelope
    dz, dx = ph["spacing"]
    ax, lat = [], []
    H, W = env.shape
    for r, c in ph["peaks"]:
        r0, r1, c0, c1 = max(0, r - 3), min(H, r + 4), max(0, c - 3), min(W, c + 4)
        loc = env[r0:r1, c0:c1]
        rr, cc = np.unravel_index(int(np.argmax(loc)), loc.shape)
        rr, cc = rr + r0, cc + c0
        ax.append(fwhm(env[max(0, rr - window):rr + window + 1, cc], dz))
        lat.append(fwhm(env[rr, max(0, cc - window):cc + window + 1], dx))
    a, b = ph["edge_rows"]
    c = ph["edge_col"]
    prof = np.asarray(image, np.float64)[a:b, max(0, c - 20):c + 21].mean(0)
    return {"axial_fwhm_mm": [float(v) for v in ax], "lateral_fwhm_mm": [float(v) for v in lat],
            "edge_gradient_per_mm": peak_edge_gradient(prof, spacing=dx)}
