"""Face detection and the face crop that feeds the one preprocessing path (fer_utils.live.detect).

The face is a real one (NASA, public domain; fer_utils/assets), never a FER2013 image.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_utils.live.detect import (
    HAAR_FRAMING,
    Box,
    HaarDetector,
    TrackingDetector,
    YuNetDetector,
    _yunet_boxes,
    calibrate_framing,
    crop_face,
    crop_faces,
    make_detector,
    to_gray,
)
from fer_utils.live.sources import sample_frames
from fer_utils.model import Preprocess


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return list(sample_frames(12, (320, 240), seed=1))


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


def test_haar_finds_the_one_face_in_a_camera_sized_frame(frames, haar):
    for frame in frames:
        boxes = haar.detect(to_gray(frame))
        assert len(boxes) == 1
        b = boxes[0]
        assert 50 <= b.w <= 140 and b.w == b.h
        assert 0 <= b.x and b.x + b.w <= 320 and 0 <= b.y and b.y + b.h <= 240


def test_haar_finds_no_face_in_a_plain_frame(haar):
    wall = np.full((240, 320), 110, np.uint8)
    assert haar.detect(wall) == []


def test_wide_frames_are_searched_shrunk_but_boxes_come_back_in_frame_pixels(frames, haar):
    small = to_gray(frames[0])
    big = cv2.resize(small, (640, 480), interpolation=cv2.INTER_LINEAR)
    b_small, b_big = haar.detect(small)[0], haar.detect(big)[0]
    assert abs(b_big.x - 2 * b_small.x) <= 4 and abs(b_big.w - 2 * b_small.w) <= 4


def test_crop_is_a_48x48_uint8_face_for_preprocess(frames, haar):
    gray = to_gray(frames[0])
    crops = crop_faces(gray, haar.detect(gray), haar.framing)
    assert crops.shape == (1, 48, 48) and crops.dtype == np.uint8
    x = Preprocess(crop_size=44)(crops)  # the same call training and evaluation make
    assert x.shape == (1, 1, 48, 48)


def test_crop_side_is_framing_times_the_box_centred_on_it():
    frame = np.zeros((200, 200), np.uint8)
    frame[50:150, 50:150] = 255  # the "face" fills the box exactly
    box = Box(50, 50, 100, 100)
    assert (crop_face(frame, box, framing=1.0) == 255).all()
    loose = crop_face(frame, box, framing=2.0)
    # framing 2: the box is the central half of the crop, the rest is the dark surround
    assert loose[16:32, 16:32].min() == 255 and loose[:8].max() == 0 and loose[:, -8:].max() == 0


def test_crop_past_the_frame_edge_repeats_the_edge_instead_of_black():
    frame = np.full((120, 160), 200, np.uint8)
    face = crop_face(frame, Box(-20, -20, 60, 60), framing=HAAR_FRAMING)
    assert face.shape == (48, 48) and face.min() == 200


def test_haar_framing_reproduces_the_framing_it_was_calibrated_for(frames, haar):
    """Crops made with HAAR_FRAMING, detected again, give the box/frame ratio measured on FER2013 (0.972)."""
    grays = [to_gray(f) for f in frames]
    crops = np.stack([crop_face(g, haar.detect(g)[0], haar.framing) for g in grays])
    found = calibrate_framing(haar, crops)
    assert found["found"] == len(crops)
    assert found["box_to_frame_median"] == pytest.approx(1 / HAAR_FRAMING, abs=0.03)
    assert abs(found["dx_median"]) < 0.03 and abs(found["dy_median"]) < 0.03


def test_unknown_detector_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown face detector 'retinaface'.*haar.*mtcnn.*yunet"):
        make_detector("retinaface")


def test_yunet_without_its_model_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"yunet\.onnx: YuNet model file not found.*OpenCV model zoo"):
        YuNetDetector(tmp_path / "yunet.onnx")


def test_yunet_output_rows_become_boxes_largest_first():
    rows = np.zeros((2, 15), np.float32)
    rows[0, [0, 1, 2, 3, 14]] = [10, 20, 30, 40, 0.9]
    rows[1, [0, 1, 2, 3, 14]] = [100, 50, 60, 70, 0.8]
    boxes = _yunet_boxes(rows)
    assert [b.as_list() for b in boxes] == [[100, 50, 60, 70], [10, 20, 30, 40]]
    assert boxes[0].score == pytest.approx(0.8)
    assert _yunet_boxes(None) == []


class _Recorder:
    """A detector that finds a fixed face and records what it was asked.

    In a search window it answers with a 64-px face at the window's centre (the tracker shrinks windows so
    the last face is 64 px).
    """

    name, framing, wants_color = "fake", 1.0, False

    def __init__(self, box: Box | None) -> None:
        self.box = box
        self.calls: list[tuple[tuple[int, ...], int, int]] = []

    def detect(self, image, min_size=0, max_size=0):
        self.calls.append((image.shape, min_size, max_size))
        if self.box is None:
            return []
        if image.shape == (240, 320):
            return [self.box]
        h, w = image.shape
        return [Box(w // 2 - 32, h // 2 - 32, 64, 64)]


def test_tracking_searches_a_shrunk_window_near_the_last_face():
    inner = _Recorder(Box(100, 60, 80, 80))
    tracker = TrackingDetector(inner, full_every=10)
    frame = np.zeros((240, 320), np.uint8)
    tracker.detect(frame)
    boxes = tracker.detect(frame)
    (full_shape, _, _), (roi_shape, lo, hi) = inner.calls
    assert full_shape == (240, 320)
    assert roi_shape == (102, 102)  # 1.6 x 80 px, shrunk by 64/80
    assert (lo, hi) == (51, 81)  # 0.8 and 1.25 times the last face, at the window's scale
    assert boxes == [Box(100, 60, 80, 80)]  # the window-centred face, back in frame pixels


def test_tracking_searches_the_whole_frame_again_when_the_face_is_lost():
    inner = _Recorder(Box(100, 60, 80, 80))
    tracker = TrackingDetector(inner, full_every=10)
    frame = np.zeros((240, 320), np.uint8)
    tracker.detect(frame)
    inner.box = None
    assert tracker.detect(frame) == []
    assert [shape for shape, _, _ in inner.calls][-1] == (240, 320)
