"""Image and mask reading: every format, grey-level and geometry rule of usrad.imageio."""
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from usrad.errors import UsradError
from usrad.imageio import read_image, read_mask

BUSBRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "busbra"


def grey(rows=30, cols=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(rows, cols), dtype=np.uint8)


def lesion(rows=30, cols=40, value=1):
    m = np.zeros((rows, cols), np.uint8)
    m[10:20, 12:25] = value
    return m


def write_itk(arr, path, spacing):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def only_problem(excinfo):
    assert len(excinfo.value.problems) == 1
    return excinfo.value.problems[0]


# ---------------------------------------------------------------------------------------- images

def test_grey_png_read_as_float32_with_given_spacing(tmp_path):
    a = grey()
    Image.fromarray(a).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png", spacing_mm=0.08)
    assert img.GetDimension() == 2 and img.GetPixelID() == sitk.sitkFloat32
    assert img.GetSize() == (40, 30) and img.GetSpacing() == (0.08, 0.08)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), a.astype(np.float32))


def test_greyscale_saved_as_rgb_or_rgba_equals_grey_png(tmp_path):
    a = grey()
    Image.fromarray(a).save(tmp_path / "g.png")
    Image.fromarray(np.stack([a, a, a], -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([a, a, a, np.full_like(a, 255)], -1)).save(tmp_path / "rgba.png")
    ref = sitk.GetArrayFromImage(read_image(tmp_path / "g.png", 0.1))
    for name in ("rgb.png", "rgba.png"):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / name, 0.1)), ref)


def test_colour_png_reduced_with_bt601_luminance(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    values = sitk.GetArrayFromImage(read_image(tmp_path / "c.png", 0.1))
    np.testing.assert_allclose(values, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-6)


def test_png_without_spacing_is_refused_and_names_pixel_spacing_column(tmp_path):
    Image.fromarray(grey()).save(tmp_path / "g.png")
    with pytest.raises(UsradError) as exc:
        read_image(tmp_path / "g.png")
    p = only_problem(exc)
    assert p.file == str(tmp_path / "g.png") and p.column == "pixel_spacing_mm"
    assert "pixel_spacing_mm" in p.message


@pytest.mark.parametrize("ext", ["nrrd", "nii.gz", "nii", "mha"])
def test_spacing_stored_in_file_is_used(tmp_path, ext):
    a = grey()
    write_itk(a, tmp_path / f"x.{ext}", (0.07, 0.09))
    img = read_image(tmp_path / f"x.{ext}")
    np.testing.assert_allclose(img.GetSpacing(), (0.07, 0.09), rtol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), a)


def test_explicit_spacing_within_one_percent_of_file_keeps_file_spacing(tmp_path):
    write_itk(grey(), tmp_path / "x.nrrd", (0.1, 0.1))
    assert read_image(tmp_path / "x.nrrd", spacing_mm=0.1005).GetSpacing() == (0.1, 0.1)


def test_explicit_spacing_conflicting_with_file_is_refused_naming_both(tmp_path):
    write_itk(grey(), tmp_path / "x.nrrd", (0.1, 0.1))
    with pytest.raises(UsradError) as exc:
        read_image(tmp_path / "x.nrrd", spacing_mm=0.2)
    p = only_problem(exc)
    assert "0.2" in p.message and "0.1" in p.message and p.column == "pixel_spacing_mm"


def test_single_slice_volume_is_squeezed_but_true_volume_refused(tmp_path):
    a = grey()
    write_itk(a[None], tmp_path / "one.nrrd", (0.1, 0.2, 3.0))
    img = read_image(tmp_path / "one.nrrd")
    assert img.GetDimension() == 2 and img.GetSpacing() == (0.1, 0.2)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), a)
    write_itk(np.stack([a, a]), tmp_path / "vol.nrrd", (0.1, 0.2, 3.0))
    with pytest.raises(UsradError) as exc:
        read_image(tmp_path / "vol.nrrd")
    assert "3D" in only_problem(exc).message


def test_16bit_image_refused_with_conversion_hint(tmp_path):
    write_itk((grey().astype(np.uint16) * 200), tmp_path / "b16.nrrd", (0.1, 0.1))
    with pytest.raises(UsradError) as exc:
        read_image(tmp_path / "b16.nrrd")
    msg = only_problem(exc).message
    assert "0-255" in msg and "RescaleIntensity" in msg and "51000" in msg


def test_float_image_holding_8bit_values_accepted_but_fractional_refused(tmp_path):
    a = grey()
    write_itk(a.astype(np.float32), tmp_path / "f.nrrd", (0.1, 0.1))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / "f.nrrd")), a)
    write_itk(a.astype(np.float32) / 255, tmp_path / "frac.nrrd", (0.1, 0.1))
    with pytest.raises(UsradError, match="non-integer"):
        read_image(tmp_path / "frac.nrrd")


def write_dicom(arr, path, **tags):
    """A single-frame ultrasound DICOM written with pydicom (8-bit grey, or RGB for a 3-channel array)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 3 if arr.ndim == 3 else 1
    ds.PhotometricInterpretation = "RGB" if arr.ndim == 3 else "MONOCHROME2"
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_pixel_spacing_read_as_x_y(tmp_path):
    a = grey()
    write_dicom(a, tmp_path / "x.dcm", PixelSpacing=[0.3, 0.2])  # DICOM order: between rows (y), between columns (x)
    img = read_image(tmp_path / "x.dcm")
    np.testing.assert_allclose(img.GetSpacing(), (0.2, 0.3))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), a)


def test_rgb_dicom_of_grey_image_equals_grey_values(tmp_path):
    a = grey()
    write_dicom(np.stack([a, a, a], -1), tmp_path / "rgb", PixelSpacing=[0.1, 0.1])  # no extension: tried as DICOM
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / "rgb")), a)


def test_dicom_ultrasound_region_spacing_in_cm_converted_to_mm(tmp_path):
    region = pydicom.Dataset()
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.0075, 0.008
    write_dicom(grey(), tmp_path / "us.dcm", SequenceOfUltrasoundRegions=pydicom.Sequence([region]))
    np.testing.assert_allclose(read_image(tmp_path / "us.dcm").GetSpacing(), (0.075, 0.08))


def test_dicom_without_spacing_needs_explicit_spacing(tmp_path):
    write_dicom(grey(), tmp_path / "n.dcm")
    with pytest.raises(UsradError, match="carries no pixel size"):
        read_image(tmp_path / "n.dcm")
    assert read_image(tmp_path / "n.dcm", 0.11).GetSpacing() == (0.11, 0.11)


def test_multiframe_dicom_refused(tmp_path):
    a = np.stack([grey(), grey(seed=1)])
    write_dicom(a.reshape(60, 40), tmp_path / "cine.dcm", NumberOfFrames=2, Rows=30, PixelSpacing=[0.1, 0.1])
    with pytest.raises(UsradError, match="multi-frame"):
        read_image(tmp_path / "cine.dcm")


@pytest.mark.parametrize("name,content", [
    ("bad.png", b"\x89PNG\r\n\x1a\n truncated"), ("bad.jpg", b"\xff\xd8\xff garbage"),
    ("bad.nrrd", b"NRRD0004\ntype: float\n"), ("bad.nii.gz", b"not gzip"), ("bad.dcm", b"not dicom"),
    ("noextension", b"random bytes"), ("table.csv", b"a,b\n1,2\n"),
])
def test_corrupt_or_unsupported_file_gives_one_problem_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UsradError) as exc:
        read_image(tmp_path / name, 0.1)
    p = only_problem(exc)
    assert p.file == str(tmp_path / name) and "Traceback" not in str(exc.value)


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(UsradError, match="file not found"):
        read_image(tmp_path / "nope.png", 0.1)
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UsradError, match="not a file"):
        read_image(tmp_path / "d.png", 0.1)


# ---------------------------------------------------------------------------------------- masks

def test_mask_label_255_read_as_1_with_reference_geometry(tmp_path):
    Image.fromarray(lesion(value=255)).save(tmp_path / "m.png")
    ref = sitk.GetImageFromArray(grey().astype(np.float32))
    ref.SetSpacing((0.1, 0.2))
    ref.SetOrigin((5.0, 7.0))
    m = read_mask(tmp_path / "m.png", ref)
    assert m.GetPixelID() == sitk.sitkUInt8
    assert m.GetSpacing() == (0.1, 0.2) and m.GetOrigin() == (5.0, 7.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(m), lesion(value=1))


def test_bilevel_png_mask_accepted(tmp_path):
    Image.fromarray(lesion(value=255)).convert("1").save(tmp_path / "m.png")
    ref = sitk.GetImageFromArray(grey().astype(np.float32))
    assert int(sitk.GetArrayFromImage(read_mask(tmp_path / "m.png", ref)).sum()) == 10 * 13


def test_mask_with_two_labels_refused(tmp_path):
    m = lesion()
    m[0:3, 0:3] = 2
    Image.fromarray(m).save(tmp_path / "m.png")
    with pytest.raises(UsradError) as exc:
        read_mask(tmp_path / "m.png", sitk.GetImageFromArray(grey().astype(np.float32)))
    assert "2 different non-zero labels (1, 2)" in only_problem(exc).message


def test_empty_mask_refused(tmp_path):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(UsradError, match="empty"):
        read_mask(tmp_path / "m.png", sitk.GetImageFromArray(grey().astype(np.float32)))


def test_mask_size_mismatch_refused_with_both_sizes(tmp_path):
    Image.fromarray(lesion(rows=31)).save(tmp_path / "m.png")
    with pytest.raises(UsradError) as exc:
        read_mask(tmp_path / "m.png", sitk.GetImageFromArray(grey().astype(np.float32)))
    p = only_problem(exc)
    assert "40x31" in p.message and "40x30" in p.message and p.file == str(tmp_path / "m.png")


def test_nrrd_mask_spacing_must_match_image(tmp_path):
    ref = read_image(write_itk(grey(), tmp_path / "i.nrrd", (0.1, 0.1)))
    write_itk(lesion(), tmp_path / "ok.nrrd", (0.1, 0.1))
    assert int(sitk.GetArrayFromImage(read_mask(tmp_path / "ok.nrrd", ref)).sum()) == 130
    write_itk(lesion(), tmp_path / "bad.nrrd", (0.2, 0.1))
    with pytest.raises(UsradError, match="spacing"):
        read_mask(tmp_path / "bad.nrrd", ref)


@pytest.mark.busbra
def test_real_busbra_image_and_mask():
    if not BUSBRA.is_dir():
        pytest.skip(f"BUS-BRA data not found at {BUSBRA} (shared/data/busbra beside the repository)")
    img = read_image(BUSBRA / "Images" / "bus_0001-l.png", spacing_mm=0.1)
    mask = read_mask(BUSBRA / "Masks" / "mask_0001-l.png", img)
    assert img.GetSize() == (274, 353)  # Width, Height in bus_data.csv
    a, m = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(mask)
    assert 0 <= a.min() and a.max() <= 255 and len(np.unique(a)) > 50
    assert set(np.unique(m)) == {0, 1}
    # BBOX in bus_data.csv is [x, y, width, height] = [91, 24, 103, 79], 1-based (MATLAB): the mask's extent
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (91 - 1, 91 - 1 + 103, 24 - 1, 24 - 1 + 79)
