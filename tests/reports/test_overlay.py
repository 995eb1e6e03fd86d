

def test_numpy_erosion_equals_scipy():
    import numpy as np
    from scipy import ndimage

    from sonokit.reports.overlay import erode

    rng = np.random.default_rng(0)
    m = ndimage.binary_dilation(rng.random((80, 97)) > 0.97, iterations=4)
    m[:10, :10] = True  # touching the border: eroded from outside, as scipy's default border_value=0
    for it in (1, 2, 5):
        assert (erode(m, it) == ndimage.binary_erosion(m, iterations=it)).all()
