"""A physically parameterised B-mode simulator (linear convolution model of pulse-echo imaging).

Pipeline (every step a pure function of its keyword arguments; same seed -> same bytes):

1. **Phantom**: point scatterers at ``positions_mm`` (N, 2) = (x lateral, z depth) in mm with real
   amplitudes (N,), or an echogenicity map from which :func:`random_scatterers` draws uniform random
   positions at ``scatterers_per_cell`` per resolution cell (FWHM_axial x FWHM_lateral).
2. **RF / IQ**: the pulse-echo PSF is separable (Bamber & Dickinson 1980; Meunier & Bertrand 1995):
   ``h(r, d) = exp(-r² / 2σ_r²) cos(2π (2 f0 / c) r) · exp(-d² / 2σ_d²)``, with r the distance along the
   beam and d the distance across it. σ_r follows from the −6 dB fractional bandwidth B of the pulse-echo
   spectrum (a Gaussian of FWHM B f0): ``σ_f = B f0 / √(8 ln 2)``, ``σ_t = 1 / (2π σ_f)``, ``σ_r = c σ_t / 2``,
   so the axial envelope FWHM is ``2 ln 2 · c / (π B f0)``. σ_d comes from the lateral two-way FWHM (given,
   or ``0.886 λ F#`` for a uniformly apodised aperture at its focus, the −6 dB width of sinc²).
   The RF is sampled along depth every ``c / (2 fs)``. The convolution is done at complex baseband: each
   scatterer's phasor ``a · exp(-i k r_s)`` (``k = 4π f0 / c``, exact phase) times its exact lateral beam
   weight for every line it reaches is splatted onto the (depth, line) grid with linear weights in depth
   (``np.bincount``), then one separable convolution with the axial Gaussian envelope gives the IQ signal.
   This equals RF convolution followed by ideal IQ demodulation (``RF = Re(IQ · exp(i k r))``, returned on
   request), up to the negative-frequency tail of the Gaussian spectrum (< 1e-3 for B <= 1).
3. **Envelope** ``|IQ|`` -> optional attenuation (round trip, ``α f0 · 2 r`` dB applied to the scatterers)
   and TGC (the same law with ``tgc_db_cm_mhz``, applied to the envelope; default: full compensation).
4. **Log compression** to [0, 1] over ``dynamic_range_db`` (:func:`log_compress`), on the beam grid.
5. **Resampling / scan conversion** to the output pixel grid by bilinear interpolation
   (``scipy.ndimage.map_coordinates``): a rectangle for ``geometry="linear"``, a fan for ``"convex"``
   (lines from a virtual apex ``apex_radius_mm`` above the probe surface; 0 gives a phased-array sector),
   zero outside the fan.

Coordinates: x lateral (0 at the probe centre), z depth (0 at the probe surface / the convex array's apex
element), both in mm. Output pixel centres include both ends of the extent (``np.linspace``), so a
301 x 201 image of 30 x 20 mm has 0.1 mm pixels. Frequencies in MHz, speed of sound in m/s.

What the model leaves out: depth-dependent focusing (the beam has the same width at all depths),
frequency-dependent attenuation's down-shift of f0, multiple scattering, reverberation, noise.
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from scipy.ndimage import correlate1d, map_coordinates

FWHM_PER_SIGMA = math.sqrt(8 * math.log(2))  # 2.3548...
LATERAL_REACH_SIGMAS = 3.5  # lateral beam weights are cut where exp(-d²/2σ²) < 2e-3
AXIAL_REACH_SIGMAS = 4.0  # axial envelope kernel cut at 3e-4
GEOMETRIES = ("linear", "convex")


class UltrasoundSimulation(NamedTuple):
    """Result of :func:`simulate_ultrasound`.

    ``image`` (H, W) float32 in [0, 1]: log-compressed B-mode on the output pixel grid (0 outside a fan).
    ``envelope`` (H, W) float64: the linear envelope (after TGC) interpolated at the same pixels, for
    statistics (speckle SNR, point-target FWHM). ``x_mm`` (W,) and ``z_mm`` (H,): pixel-centre coordinates.
    ``rf`` (Nz, L) float64 RF lines (``return_rf=True``, else None), sampled at depths ``rf_depth_mm`` (Nz,)
    along each beam (``c / (2 fs)`` apart); ``iq`` (Nz, L) complex128 baseband signal on the same grid.
    """

    image: np.ndarray
    envelope: np.ndarray
    x_mm: np.ndarray
    z_mm: np.ndarray
    rf_depth_mm: np.ndarray
    iq: np.ndarray
    rf: np.ndarray | None


# --------------------------------------------------------------------------------------------- checks
def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, found {value!r}")
    return float(value)


def _finite_array(name: str, a, shape_doc: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/Inf value(s); expected finite {shape_doc}")
    return a


def pulse_echo_fwhm_mm(*, f0_mhz: float = 5.0, fractional_bandwidth: float = 0.6, c_m_s: float = 1540.0,
                       lateral_fwhm_mm: float | None = None, f_number: float | None = None) -> tuple[float, float]:
    """Theoretical (axial, lateral) FWHM in mm of the pulse-echo envelope of a point scatterer.

    Axial: ``2 ln 2 · c / (π B f0)`` (Gaussian pulse, B the −6 dB fractional bandwidth of the two-way
    spectrum). Lateral: ``lateral_fwhm_mm`` if given, else ``0.886 λ F#`` (two-way −6 dB width of a uniformly
    apodised aperture at its focus, F# = focus depth / aperture), else 0.6 mm. Giving both is an error.
    """
    f0 = _positive("f0_mhz", f0_mhz)
    bw = _positive("fractional_bandwidth", fractional_bandwidth)
    if bw > 2:
        raise ValueError(f"fractional_bandwidth must be in (0, 2] (a fraction of f0), found {bw}")
    c_mm_us = _positive("c_m_s", c_m_s) / 1000.0
    axial = 2 * math.log(2) * c_mm_us / (math.pi * bw * f0)
    if lateral_fwhm_mm is not None and f_number is not None:
        raise ValueError(f"give lateral_fwhm_mm or f_number, not both; found lateral_fwhm_mm={lateral_fwhm_mm}, "
                         f"f_number={f_number}")
    if f_number is not None:
        lateral = 0.886 * (c_mm_us / f0) * _positive("f_number", f_number)
    else:
        lateral = 0.6 if lateral_fwhm_mm is None else _positive("lateral_fwhm_mm", lateral_fwhm_mm)
    return axial, lateral


def log_compress(envelope, *, dynamic_range_db: float = 50.0, reference: float | None = None) -> np.ndarray:
    """Linear envelope (any shape, >= 0) -> ``clip(1 + 20 log10(e / reference) / dynamic_range_db, 0, 1)``.

    ``reference`` (default: the envelope maximum) maps to 1; ``-dynamic_range_db`` dB below it and less to 0.
    An all-zero envelope gives zeros. Returns float64 of the input's shape.
    """
    if not (math.isfinite(dynamic_range_db) and dynamic_range_db > 0):
        raise ValueError(f"dynamic_range_db must be > 0 dB (the displayed range below the reference), "
                         f"found {dynamic_range_db}")
    e = np.asarray(envelope, dtype=np.float64)
    ref = float(e.max()) if reference is None else _positive("reference", reference)
    if ref <= 0:
        return np.zeros_like(e)
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(e, 0.0) / ref)  # -inf where e == 0, clipped to 0 below
    return np.clip(1.0 + db / dynamic_range_db, 0.0, 1.0)


def random_scatterers(echogenicity, *, x_range_mm: tuple[float, float] = (-10.0, 10.0),
                      z_range_mm: tuple[float, float] = (0.0, 30.0), scatterers_per_cell: float = 10.0,
                      resolution_cell_mm: tuple[float, float] = (0.2265, 0.6), margin_mm: float = 0.0,
                      random_amplitudes: bool = False,
                      seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random scatterers whose amplitudes follow an echogenicity map.

    ``echogenicity`` (h, w) >= 0 is an amplitude scale sampled at pixel centres spanning ``z_range_mm``
    (rows, both ends included) and ``x_range_mm`` (columns); each scatterer takes its nearest pixel's value
    (edge values continue into the margin), times a standard normal draw when ``random_amplitudes``.
    Positions are uniform over the extent grown by ``margin_mm`` on every side (so the image edges see a full
    PSF of scatterers). Their number is ``scatterers_per_cell`` x area / (axial x lateral resolution cell,
    ``resolution_cell_mm`` in mm, e.g. from :func:`pulse_echo_fwhm_mm`); >= 10 per cell gives fully
    developed (Rayleigh) speckle with constant amplitudes. Returns (positions (N, 2) as (x, z) mm, amplitudes (N,)).
    """
    ech = _finite_array("echogenicity", echogenicity, "amplitudes >= 0 of shape (h, w)")
    if ech.ndim != 2 or min(ech.shape) < 1:
        raise ValueError(f"echogenicity must be a 2-D map (h, w), found shape {ech.shape}")
    if (ech < 0).any():
        raise ValueError(f"echogenicity must be >= 0 (an amplitude scale), found minimum {ech.min():.3g}")
    density = _positive("scatterers_per_cell", scatterers_per_cell)
    cz, cx = (_positive("resolution_cell_mm", v) for v in resolution_cell_mm)
    if not (math.isfinite(margin_mm) and margin_mm >= 0):
        raise ValueError(f"margin_mm must be >= 0, found {margin_mm}")
    (x0, x1), (z0, z1) = x_range_mm, z_range_mm
    if not (x1 >= x0 and z1 >= z0):
        raise ValueError(f"x_range_mm and z_range_mm must be (start, end) with end >= start, found {x_range_mm}, "
                         f"{z_range_mm}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lo_x, hi_x, lo_z, hi_z = x0 - margin_mm, x1 + margin_mm, z0 - margin_mm, z1 + margin_mm
    n = int(round(density * (hi_x - lo_x) * (hi_z - lo_z) / (cz * cx)))
    x = rng.uniform(lo_x, hi_x, n)
    z = rng.uniform(lo_z, hi_z, n)
    h, w = ech.shape
    col = np.clip(np.rint((x - x0) / (x1 - x0) * (w - 1)) if w > 1 and x1 > x0 else np.zeros(n), 0, w - 1)
    row = np.clip(np.rint((z - z0) / (z1 - z0) * (h - 1)) if h > 1 and z1 > z0 else np.zeros(n), 0, h - 1)
    amp = ech[row.astype(np.intp), col.astype(np.intp)]
    if random_amplitudes:
        amp = amp * rng.standard_normal(n)
    return np.stack([x, z], axis=1), amp


# --------------------------------------------------------------------------------------------- geometry
def _output_grid(geometry: str, image_shape: tuple[int, int], r0: float, r1: float, width_mm: float,
                 half_angle: float, apex: float) -> tuple[np.ndarray, np.ndarray]:
    H, W = image_shape
    if geometry == "linear":
        return np.linspace(-width_mm / 2, width_mm / 2, W), np.linspace(r0, r1, H)
    x_half = (apex + r1) * math.sin(half_angle)
    z_top = min(r0, (apex + r0) * math.cos(half_angle) - apex)
    return np.linspace(-x_half, x_half, W), np.linspace(z_top, r1, H)


def _beam_coords(geometry: str, x: np.ndarray, z: np.ndarray, apex: float) -> tuple[np.ndarray, np.ndarray]:
    """Scatterer/pixel positions -> (lateral coordinate of the line family, radial distance from the apex)."""
    if geometry == "linear":
        return x, z
    return np.arctan2(x, z + apex), np.hypot(x, z + apex)  # (angle rad, radius mm)


# --------------------------------------------------------------------------------------------- core
def _splat_iq(pos: np.ndarray, amp: np.ndarray, *, geometry: str, line0: float, dline: float, n_lines: int,
              apex: float, sigma_lat: float, k_rad_mm: float, r_start: float, dz: float, nz: int,
              att_db_per_mm: float) -> np.ndarray:
    """Scatterers -> (nz, n_lines) complex grid of phasors ``a w_lat(d) 10^(-att r / 20) exp(-i k r)`` with
    linear weights in depth, r = depth along each line, d = distance to its axis."""
    u, rad = _beam_coords(geometry, pos[:, 0], pos[:, 1], apex)  # (N,), (N,)
    reach = LATERAL_REACH_SIGMAS * sigma_lat
    # drop scatterers that reach no line of the grid (e.g. outside a fan): they would add exact zeros
    r_end = r_start + (nz - 1) * dz
    if geometry == "linear":
        keep = (np.abs(u - (line0 + (n_lines - 1) * dline / 2)) <= (n_lines - 1) * dline / 2 + reach) \
            & (rad >= r_start) & (rad <= r_end)
    else:
        reach_angle = np.arcsin(np.minimum(1.0, reach / np.maximum(rad, 1e-9)))
        keep = (np.abs(u - (line0 + (n_lines - 1) * dline / 2)) <= (n_lines - 1) * dline / 2 + reach_angle) \
            & (rad - apex >= r_start) & (rad - apex <= r_end + reach)
    u, rad, amp = u[keep], rad[keep], amp[keep]
    if geometry == "linear":
        n_reach = np.full(u.shape, math.ceil(reach / dline))
    else:  # lines within asin(reach / rho) of the scatterer's angle
        n_reach = np.ceil(np.arcsin(np.minimum(1.0, reach / np.maximum(rad, 1e-9))) / dline).astype(np.int64)
        n_reach = 2 ** np.ceil(np.log2(np.maximum(n_reach, 1))).astype(np.int64)  # few distinct sizes
    n_reach = np.minimum(n_reach, n_lines)
    re = np.zeros(nz * n_lines)
    im = np.zeros(nz * n_lines)
    for nr in np.unique(n_reach):
        sel = n_reach == nr
        us, rs, a = u[sel], rad[sel], amp[sel]
        li = np.rint((us - line0) / dline).astype(np.int64)[:, None] + np.arange(-nr, nr + 1)  # (n, K) line ids
        ul = line0 + li * dline  # (n, K) line coordinate
        if geometry == "linear":
            d = us[:, None] - ul  # (n, K) lateral distance
            r = rs[:, None]  # (n, 1) depth, the same for every line
        else:
            dth = us[:, None] - ul
            d = rs[:, None] * np.sin(dth)  # (n, K) distance to the line's axis
            r = rs[:, None] * np.cos(dth) - apex  # (n, K) depth along the line
        zz = (r - r_start) / dz
        i0 = np.floor(zz)
        f = zz - i0  # (n, 1|K) linear splat weight of row i0 + 1
        w = np.exp(-(d * d) / (2 * sigma_lat**2))  # (n, K) lateral beam weight
        w *= (li >= 0) & (li < n_lines) & (i0 >= 0) & (i0 < nz - 1)  # drop what falls off the grid
        if att_db_per_mm:
            w *= 10.0 ** (-att_db_per_mm * np.maximum(r, 0.0) / 20.0)
        a = a[:, None]
        p_re, p_im = a * np.cos(k_rad_mm * r), -a * np.sin(k_rad_mm * r)  # phasor a exp(-i k r), (n, 1|K)
        idx = (np.clip(i0, 0, nz - 2).astype(np.int64) * n_lines + np.clip(li, 0, n_lines - 1)).ravel()
        for rows, lin in ((idx, 1.0 - f), (idx + n_lines, f)):  # rows i0 and i0 + 1
            wl = w * lin
            re += np.bincount(rows, weights=(wl * p_re).ravel(), minlength=nz * n_lines)
            im += np.bincount(rows, weights=(wl * p_im).ravel(), minlength=nz * n_lines)
    return (re + 1j * im).reshape(nz, n_lines)


def simulate_ultrasound(
    *,
    positions_mm=None,
    amplitudes=None,
    echogenicity=None,
    scatterers_per_cell: float = 10.0,
    random_amplitudes: bool = False,
    seed: int | np.random.Generator = 0,
    f0_mhz: float = 5.0,
    fractional_bandwidth: float = 0.6,
    fs_mhz: float = 40.0,
    c_m_s: float = 1540.0,
    lateral_fwhm_mm: float | None = None,
    f_number: float | None = None,
    depth_range_mm: tuple[float, float] = (0.0, 30.0),
    width_mm: float = 20.0,
    n_lines: int | None = None,
    image_shape: tuple[int, int] = (301, 201),
    geometry: Literal["linear", "convex"] = "linear",
    angle_span_deg: float = 60.0,
    apex_radius_mm: float = 40.0,
    attenuation_db_cm_mhz: float = 0.0,
    tgc_db_cm_mhz: float | None = None,
    dynamic_range_db: float = 50.0,
    return_rf: bool = False,
) -> UltrasoundSimulation:
    """Simulate a B-mode image from point scatterers or an echogenicity map (see the module docstring).

    Phantom (exactly one): ``positions_mm`` (N, 2) as (x lateral, z depth) mm with ``amplitudes`` (N,)
    (default ones); or ``echogenicity`` (h, w) >= 0 on the output image's bounding box, turned into
    ``scatterers_per_cell`` scatterers per resolution cell by :func:`random_scatterers` (``seed``,
    ``random_amplitudes``).
    Transducer: ``f0_mhz`` centre frequency (MHz), ``fractional_bandwidth`` (−6 dB, fraction of f0),
    ``fs_mhz`` RF sampling frequency (MHz; must exceed twice the upper −6 dB frequency), ``c_m_s`` speed of
    sound (m/s), lateral two-way FWHM ``lateral_fwhm_mm`` or ``f_number`` (default 0.6 mm).
    Scan: ``depth_range_mm`` (start, end) along the beams; ``geometry="linear"``: ``n_lines`` parallel lines
    over ``width_mm`` centred on x = 0; ``"convex"``: lines fan out over ``angle_span_deg`` from an apex
    ``apex_radius_mm`` above the probe surface (0: sector). ``n_lines`` defaults to the image width.
    Output: ``image_shape`` (H, W) pixels over the scan's bounding box (both ends included);
    ``attenuation_db_cm_mhz`` (round trip, at f0), ``tgc_db_cm_mhz`` (None: = attenuation),
    ``dynamic_range_db`` of the log compression (referenced to the envelope maximum).
    Returns :class:`UltrasoundSimulation`.
    """
    # ---- options, checked eagerly
    f0 = _positive("f0_mhz", f0_mhz)
    fs = _positive("fs_mhz", fs_mhz)
    c_mm_us = _positive("c_m_s", c_m_s) / 1000.0
    fwhm_ax, fwhm_lat = pulse_echo_fwhm_mm(f0_mhz=f0, fractional_bandwidth=fractional_bandwidth, c_m_s=c_m_s,
                                           lateral_fwhm_mm=lateral_fwhm_mm, f_number=f_number)
    f_upper = f0 * (1 + fractional_bandwidth / 2)
    if fs <= 2 * f_upper:
        raise ValueError(f"fs_mhz={fs} is below the Nyquist rate {2 * f_upper:.3g} MHz of the RF "
                         f"(2 x upper -6 dB frequency f0 (1 + B/2)); raise fs_mhz or lower f0_mhz")
    if not (math.isfinite(dynamic_range_db) and dynamic_range_db > 0):
        raise ValueError(f"dynamic_range_db must be > 0 dB, found {dynamic_range_db}")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, found {geometry!r}")
    r0, r1 = (float(v) for v in depth_range_mm)
    if not (math.isfinite(r0) and math.isfinite(r1) and 0 <= r0 < r1):
        raise ValueError(f"depth_range_mm must be (start, end) with 0 <= start < end mm, found {depth_range_mm}")
    if len(image_shape) != 2 or min(int(s) for s in image_shape) < 2:
        raise ValueError(f"image_shape must be (H, W) with H, W >= 2, found {image_shape}")
    H, W = int(image_shape[0]), int(image_shape[1])
    L = W if n_lines is None else int(n_lines)
    if L < 2:
        raise ValueError(f"n_lines must be >= 2, found {n_lines}")
    for name, v in (("attenuation_db_cm_mhz", attenuation_db_cm_mhz), ("tgc_db_cm_mhz", tgc_db_cm_mhz)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be >= 0 dB/cm/MHz, found {v}")
    tgc = attenuation_db_cm_mhz if tgc_db_cm_mhz is None else tgc_db_cm_mhz
    if geometry == "linear":
        width = _positive("width_mm", width_mm)
        half, apex = 0.0, 0.0
        line0, dline = -width / 2, width / (L - 1)
    else:
        span = _positive("angle_span_deg", angle_span_deg)
        if span >= 180:
            raise ValueError(f"angle_span_deg must be in (0, 180), found {span}")
        apex = float(apex_radius_mm)
        if not (math.isfinite(apex) and apex >= 0):
            raise ValueError(f"apex_radius_mm must be >= 0 (0: sector), found {apex_radius_mm}")
        width, half = 0.0, math.radians(span) / 2
        line0, dline = -half, 2 * half / (L - 1)
    x_mm, z_mm = _output_grid(geometry, (H, W), r0, r1, width, half, apex)

    # ---- phantom
    sigma_ax, sigma_lat = fwhm_ax / FWHM_PER_SIGMA, fwhm_lat / FWHM_PER_SIGMA
    if echogenicity is not None:
        if positions_mm is not None or amplitudes is not None:
            raise ValueError("give positions_mm (and amplitudes) or echogenicity, not both")
        pos, amp = random_scatterers(
            echogenicity, x_range_mm=(x_mm[0], x_mm[-1]), z_range_mm=(z_mm[0], z_mm[-1]),
            scatterers_per_cell=scatterers_per_cell, resolution_cell_mm=(fwhm_ax, fwhm_lat),
            margin_mm=max(AXIAL_REACH_SIGMAS * sigma_ax, LATERAL_REACH_SIGMAS * sigma_lat),
            random_amplitudes=random_amplitudes, seed=seed)
    elif positions_mm is None:
        raise ValueError("no phantom: give positions_mm (N, 2) in mm (with amplitudes (N,)) or echogenicity (h, w)")
    else:
        pos = _finite_array("positions_mm", positions_mm, "(x, z) mm of shape (N, 2)")
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise ValueError(f"positions_mm must have shape (N, 2) as (x lateral, z depth) mm, found {pos.shape}")
        amp = np.ones(len(pos)) if amplitudes is None else _finite_array("amplitudes", amplitudes, "values (N,)")
        if amp.shape != (len(pos),):
            raise ValueError(f"amplitudes must have shape ({len(pos)},) to match positions_mm, found {amp.shape}")

    # ---- IQ on the beam grid: (nz depth samples every c / 2fs) x (L lines)
    dz = c_mm_us / (2 * fs)
    margin = AXIAL_REACH_SIGMAS * sigma_ax + dz
    r_start = max(0.0, r0 - margin) if geometry == "convex" and apex == 0 else r0 - margin
    nz = int(math.ceil((r1 + margin - r_start) / dz)) + 1
    rf_depth = r_start + dz * np.arange(nz)  # (nz,) mm along each beam
    k = 4 * math.pi * f0 / c_mm_us  # rad/mm: two-way wavenumber
    iq = _splat_iq(pos, amp, geometry=geometry, line0=line0, dline=dline, n_lines=L, apex=apex,
                   sigma_lat=sigma_lat, k_rad_mm=k, r_start=r_start, dz=dz, nz=nz,
                   att_db_per_mm=attenuation_db_cm_mhz * f0 * 2 / 10)
    half_len = int(math.ceil(AXIAL_REACH_SIGMAS * sigma_ax / dz))
    g = np.exp(-0.5 * (np.arange(-half_len, half_len + 1) * dz / sigma_ax) ** 2)  # axial envelope, peak 1
    iq = correlate1d(iq.real, g, axis=0, mode="constant") + 1j * correlate1d(iq.imag, g, axis=0, mode="constant")

    # ---- envelope, TGC, log compression on the beam grid
    env = np.abs(iq)  # (nz, L)
    if tgc:
        env *= 10.0 ** (tgc * f0 * 2 / 10 * np.maximum(rf_depth, 0.0) / 20.0)[:, None]
    visible = (rf_depth >= r0) & (rf_depth <= r1)
    ref = float(env[visible].max()) if visible.any() else 0.0
    bmode = log_compress(env, dynamic_range_db=dynamic_range_db, reference=ref if ref > 0 else None)

    # ---- resampling / scan conversion: output pixel -> (beam sample, line) coordinates, bilinear
    zz, xx = np.meshgrid(z_mm, x_mm, indexing="ij")  # (H, W)
    u, rad = _beam_coords(geometry, xx, zz, apex)
    depth = rad - apex
    coords = np.stack([(depth - r_start) / dz, (u - line0) / dline])  # (2, H, W)
    inside = (depth >= r0 - 1e-9) & (depth <= r1 + 1e-9) & (np.abs(u - (line0 + (L - 1) * dline / 2))
                                                            <= (L - 1) * dline / 2 + 1e-9)
    image = np.where(inside, map_coordinates(bmode, coords, order=1, mode="nearest"), 0.0).astype(np.float32)
    envelope = np.where(inside, map_coordinates(env, coords, order=1, mode="nearest"), 0.0)
    rf = (iq * np.exp(1j * k * rf_depth)[:, None]).real if return_rf else None
    return UltrasoundSimulation(image, envelope, x_mm, z_mm, rf_depth, iq, rf)
