"""Photos in, one record per face out: fer_utils.classify_image (fer_utils.live.photo), the detectors behind it,
and the command line on photos.

The face is a real one (NASA, public domain; fer_utils/assets) pasted into larger frames, never a FER2013
image; the model is the shipped one (models/). No network, no GPU.
"""

from __future__ import annotations

import csv
import json
import logging
import re

import cv2
import numpy as np
import pytest

import fer_utils
from fer_utils import CLASS_NAMES
from fer_utils.live import photo
from fer_utils.live.detect import LANDMARK_NAMES, Box, DownscalingDetector, _mtcnn_boxes, _yunet_boxes
from fer_utils.live.photo import classify_image, photo_pipeline
from fer_utils.live.runner import main
from fer_utils.live.sources import SAMPLE_FACE, ImageReadError

DETECTORS = ["haar", "mtcnn"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
ONE_FACE = (300, 100, 240)
"""Where :func:`composite` pastes the sample face in a 640x480 photo: (x, y, side)."""


def composite(size: tuple[int, int], places: list[tuple[int, int, int]]) -> np.ndarray:
    """A plain grey-blue wall, ``size`` = (width, height), with the sample face (head and shoulders) pasted at each
    ``(x, y, side)``: uint8 BGR."""
    w, h = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (96, 112, 128)
    face = cv2.imread(str(SAMPLE_FACE), cv2.IMREAD_COLOR)
    for x, y, side in places:
        frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return frame


def inside(box: tuple[int, int, int, int], place: tuple[int, int, int], slack: float = 0.1) -> bool:
    """Whether a face box lies within the pasted picture (give or take ``slack`` of its side) and is face-sized."""
    x, y, side = place
    m = slack * side
    bx, by, bw, bh = box
    fits = bx >= x - m and by >= y - m and bx + bw <= x + side + m and by + bh <= y + side + m
    return fits and max(bw, bh) >= 0.3 * side


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), composite((640, 480), [ONE_FACE]))
    return path


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory):
    """A 6000x4000 JPEG, a plain wall with one face 1600 px across."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    place = (3600, 1400, 1600)
    cv2.imwrite(str(path), composite((6000, 4000), [place]))
    return path, place


# --------------------------------------------------------------------------- classify_image


@pytest.mark.parametrize("detector", DETECTORS)
def test_classify_image_finds_the_face_where_it_was_pasted(detector):
    faces = classify_image(composite((640, 480), [ONE_FACE]), detector=detector)
    assert len(faces) == 1
    face = faces[0]
    assert inside(face.box, ONE_FACE), face.box
    assert list(face.probabilities) == list(CLASS_NAMES)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.label == max(face.probabilities, key=lambda c: face.probabilities[c])
    assert face.confidence == pytest.approx(face.probabilities[face.label])


@pytest.mark.parametrize("detector", DETECTORS)
def test_two_faces_in_a_photo_give_two_records_largest_first(detector):
    big, small = (40, 60, 300), (520, 120, 200)
    faces = classify_image(composite((800, 440), [big, small]), detector=detector)
    assert len(faces) == 2
    assert inside(faces[0].box, big) and inside(faces[1].box, small)


def test_mtcnn_places_five_landmarks_on_the_face_and_haar_none():
    frame = composite((640, 480), [ONE_FACE])
    (face,) = classify_image(frame, detector="mtcnn")
    assert face.landmarks is not None and set(face.landmarks) == set(LANDMARK_NAMES)
    x, y, w, h = face.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks.values())
    assert face.landmarks["left_eye"][0] < face.landmarks["right_eye"][0]  # left as seen in the image
    assert face.landmarks["left_eye"][1] < face.landmarks["nose"][1] < face.landmarks["mouth_left"][1]
    assert 0.9 <= face.detector_score <= 1.0
    (plain,) = classify_image(frame, detector="haar")
    assert plain.landmarks is None and plain.detector_score == 1.0


def test_an_rgb_array_stated_as_rgb_gives_what_the_same_photo_in_bgr_gives():
    bgr = composite((640, 480), [ONE_FACE])
    from_bgr = [f.to_dict() for f in classify_image(bgr)]
    from_rgb = [f.to_dict() for f in classify_image(np.ascontiguousarray(bgr[:, :, ::-1]), channels="rgb")]
    from_view = [f.to_dict() for f in classify_image(bgr[:, :, ::-1], channels="rgb")]  # negative strides
    assert len(from_bgr) == 1
    assert from_rgb == from_bgr and from_view == from_bgr


def test_an_array_whose_shape_or_dtype_does_not_fit_its_channels_is_refused():
    gray = np.full((480, 640), 110, np.uint8)
    with pytest.raises(ValueError, match="channels='gray'"):
        classify_image(gray)  # channels="bgr" by default: a 2-D array must be stated as gray
    with pytest.raises(ValueError, match="uint8"):
        classify_image(composite((640, 480), [ONE_FACE]).astype(np.float32) / 255.0)
    with pytest.raises(ValueError, match="choose one of"):
        classify_image(gray, channels="grey")


def test_a_photo_file_gives_what_its_pixels_give(photo_file):
    from_file = [f.to_dict() for f in fer_utils.classify_image(photo_file)]  # the package's own re-export
    from_pixels = [f.to_dict() for f in classify_image(cv2.imread(str(photo_file)))]
    assert len(from_file) == 1 and from_file == from_pixels
    assert json.loads(json.dumps(from_file)) == from_file  # JSON-ready


def test_a_photo_without_a_face_gives_an_empty_list_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="fer_utils.live.photo"):
        assert classify_image(composite((640, 480), [])) == []
    assert "640x480 image: no face found" in caplog.text


def test_a_truncated_png_raises_an_error_naming_the_file(tmp_path):
    ok, png = cv2.imencode(".png", composite((320, 240), [(80, 40, 160)]))
    path = tmp_path / "cut_off.png"
    path.write_bytes(png.tobytes()[: png.size // 2])
    with pytest.raises(ImageReadError, match=r"cut_off\.png"):
        classify_image(path)
    assert issubclass(ImageReadError, ValueError)


def test_a_truncated_jpeg_raises_an_error_naming_the_file(tmp_path):
    ok, jpeg = cv2.imencode(".jpg", composite((320, 240), [(80, 40, 160)]))
    path = tmp_path / "half.jpg"
    path.write_bytes(jpeg.tobytes()[: jpeg.size * 2 // 3])
    with pytest.raises(ImageReadError, match=r"half\.jpg"):
        classify_image(path)


def test_a_file_that_is_no_image_or_no_file_is_named_in_the_error(tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png: not a readable image"):
        classify_image(notes)
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        classify_image(tmp_path / "missing.jpg")


@pytest.mark.parametrize("detector", DETECTORS)
def test_a_huge_photo_is_searched_shrunk_and_its_face_found_in_its_own_pixels(huge_jpeg, detector):
    path, place = huge_jpeg
    faces = classify_image(path, detector=detector)
    assert len(faces) == 1 and inside(faces[0].box, place), [f.box for f in faces]


class _Recorder:
    """A detector that finds one fixed face (with a landmark) and records what it was given."""

    name, framing, wants_color = "recorder", 1.0, False

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], int, int]] = []

    def detect(self, image, min_size=0, max_size=0):
        self.calls.append((image.shape, min_size, max_size))
        return [Box(100, 50, 40, 40, 0.9, {"nose": (120, 70)})]


def test_large_images_are_searched_at_most_max_side_and_boxes_come_back_in_their_pixels():
    inner = _Recorder()
    detector = DownscalingDetector(inner, max_side=1000)
    boxes = detector.detect(np.zeros((3000, 4000), np.uint8), min_size=400)
    assert inner.calls == [((750, 1000), 100, 0)]
    assert boxes == [Box(400, 200, 160, 160, 0.9, {"nose": (480, 280)})]
    detector.detect(np.zeros((600, 800), np.uint8))
    assert inner.calls[-1] == ((600, 800), 0, 0)  # small enough: searched as it is


def test_mtcnn_output_becomes_boxes_with_landmarks_largest_first_without_weak_faces():
    def face(box, confidence):
        x, y = box[0], box[1]
        points = [(x + 5, y + 10), (x + 20, y + 10), (x + 12, y + 18), (x + 6, y + 25), (x + 19, y + 25)]
        return {"box": box, "confidence": confidence, "keypoints": dict(zip(LANDMARK_NAMES, points, strict=True))}

    found = [face([10, 20, 30, 40], 0.95), face([100, 50, 60, 70], 0.99), face([200, 50, 80, 90], 0.8)]
    boxes = _mtcnn_boxes(found, score_threshold=0.9)
    assert [b.as_list() for b in boxes] == [[100, 50, 60, 70], [10, 20, 30, 40]]
    assert boxes[0].landmarks == {
        "left_eye": (105, 60),
        "right_eye": (120, 60),
        "nose": (112, 68),
        "mouth_left": (106, 75),
        "mouth_right": (119, 75),
    }
    assert boxes[0].score == pytest.approx(0.99)
    assert _mtcnn_boxes(found, min_size=75) == [_mtcnn_boxes(found)[0]]  # only the 80x90 face is large enough


def test_yunet_boxes_carry_its_five_points_as_landmarks():
    row = np.zeros((1, 15), np.float32)
    row[0, :4] = [10, 20, 30, 40]
    row[0, 4:14] = [15, 30, 30, 30, 22, 38, 16, 48, 28, 48]
    row[0, 14] = 0.9
    (box,) = _yunet_boxes(row)
    assert box.landmarks == dict(zip(LANDMARK_NAMES, [(15, 30), (30, 30), (22, 38), (16, 48), (28, 48)], strict=True))
    assert box.scaled(2.0, 1, 1).landmarks["nose"] == (45, 77)


def test_face_classifier_refuses_a_whole_image_and_points_to_classify_image():
    classifier = photo_pipeline(detector="haar").classifier
    for whole in (np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640), np.uint8), np.zeros((2, 48, 48), np.float32)):
        with pytest.raises(ValueError, match=r"fer_utils\.classify_image"):
            classifier.predict(whole)
    assert classifier.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, len(CLASS_NAMES))


def test_the_classifier_is_loaded_once_for_repeated_calls(monkeypatch):
    photo.clear_cache()
    built = []
    real = photo.FaceClassifier

    def counting(*args, **kwargs):
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(photo, "FaceClassifier", counting)
    frame = composite((640, 480), [ONE_FACE])
    first, second = classify_image(frame, detector="haar"), classify_image(frame, detector="haar")
    assert len(built) == 1
    assert [f.to_dict() for f in first] == [f.to_dict() for f in second]  # and nothing carried over between calls


# --------------------------------------------------------------------------- the command line on photos


def test_cli_on_a_photo_prints_each_face_with_its_box_label_and_top_3(photo_file, capsys):
    assert main(["--source", str(photo_file)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if " box [" in line]
    m = re.fullmatch(rf"{re.escape(str(photo_file))} face 0 box \[(\d+), (\d+), (\d+), (\d+)\]: (\w+) \((.*)\)", line)
    assert m, line
    assert inside(tuple(int(v) for v in m.groups()[:4]), ONE_FACE)
    top = re.findall(r"(\w+) ([01]\.\d\d)", m.group(6))
    assert len(top) == 3 and top[0][0] == m.group(5) in CLASS_NAMES
    assert all(name in CLASS_NAMES for name, _ in top) and [p for _, p in top] == sorted(
        (p for _, p in top), reverse=True
    )
    assert "1 photos (0 unreadable skipped), face in 1, 1 faces" in out


@pytest.mark.parametrize(("suffix", "magic"), [(".png", PNG_MAGIC), (".jpg", JPEG_MAGIC)])
def test_cli_writes_an_annotated_image_and_json_with_each_faces_probabilities(photo_file, tmp_path, suffix, magic):
    out, record_path = tmp_path / f"annotated{suffix}", tmp_path / "faces.json"
    args = ["--source", str(photo_file), "--output", str(out), "--json", str(record_path), "--detector", "haar"]
    assert main(args) == 0
    assert out.read_bytes()[: len(magic)] == magic
    annotated = cv2.imread(str(out))
    assert annotated.shape == (480, 640, 3) and not np.array_equal(annotated, cv2.imread(str(photo_file)))
    record = json.loads(record_path.read_text())
    assert record["photos"] == 1 and record["faces"] == 1 and record["pipeline"]["detector"] == "haar"
    (result,) = record["results"]
    assert result["file"] == str(photo_file) and (result["width"], result["height"]) == (640, 480)
    (face,) = result["faces"]
    assert set(face["probabilities"]) == set(CLASS_NAMES)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["probabilities"], key=lambda c: face["probabilities"][c])
    assert inside(tuple(face["box"]), ONE_FACE)


def test_cli_on_a_folder_writes_an_annotated_copy_per_photo_under_its_name_and_a_csv(tmp_path, capsys):
    src, out, csv_path = tmp_path / "in", tmp_path / "out", tmp_path / "faces.csv"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), composite((640, 480), [ONE_FACE]))
    cv2.imwrite(str(src / "b.jpg"), composite((640, 480), []))
    (src / "c.png").write_bytes(PNG_MAGIC + b" cut off")  # unreadable: skipped, and said so
    args = ["--source", str(src), "--output", str(out), "--csv", str(csv_path), "--detector", "haar"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert (out / "a.png").read_bytes()[:8] == PNG_MAGIC and (out / "b.jpg").read_bytes()[:3] == JPEG_MAGIC
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == [str(src / "a.png")] and rows[0]["label"] in CLASS_NAMES
    assert sum(float(rows[0][f"p_{c}"]) for c in CLASS_NAMES) == pytest.approx(1.0, abs=1e-3)
    text = capsys.readouterr().out
    assert f"{src / 'b.jpg'}: no face found" in text
    assert "2 photos (1 unreadable skipped), face in 1, 1 faces" in text


def test_cli_wants_a_folder_as_output_for_a_glob_of_photos(tmp_path, capsys):
    assert main(["--source", str(tmp_path / "*.png"), "--output", str(tmp_path / "x.png")]) == 2
    assert "--output must be a folder" in capsys.readouterr().err


def test_cli_on_a_truncated_photo_names_it_and_exits_with_status_2(tmp_path, capsys):
    ok, png = cv2.imencode(".png", composite((320, 240), [(80, 40, 160)]))
    bad = tmp_path / "cut.png"
    bad.write_bytes(png.tobytes()[: png.size // 2])
    assert main(["--source", str(bad), "--detector", "haar"]) == 2
    assert "cut.png" in capsys.readouterr().err
