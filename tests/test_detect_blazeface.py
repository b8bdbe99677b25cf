"""The shipped BlazeFace detector: its files (sha256-checked, as detector.json says), its decoding and NMS,
and what it finds on photos made here from scikit-image's astronaut (public domain) with her true eye
positions known (set by hand on the original, moved by the exact warp that made each photo): scaled from
40 px to most of the frame, rotated up to 30 degrees, cropped tight, padded, several faces side by side,
and faceless photos. Nothing here reads ../shared."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from faceedit.engine.detect import make_detector
from faceedit.engine.detectors import blazeface as B
from faceedit.engine.errors import EngineError

pytest.importorskip("skimage")
from faceedit.bench import detection as D  # noqa: E402  (needs scikit-image)


@pytest.fixture(scope="module")
def detector():
    return make_detector()


@pytest.fixture(scope="module")
def report(detector):
    return D.evaluate(detector, D.synthetic_cases() + D.faceless_cases())


def test_every_synthetic_face_is_found_with_landmark_eyes_within_5_percent(report):
    missed = [(c["case"], c["found"], c["faces"]) for c in report["cases"] if c["found"] < c["faces"]]
    assert not missed
    assert report["landmark_eyes"] == report["faces"] == 28
    bad = [(c["case"], e) for c in report["cases"] for e in c["eye_errors"] if e > 0.05]
    assert not bad, bad
    assert report["eye_error_mean"] < 0.035


def test_no_false_faces_in_faceless_photos_or_beside_real_ones(report):
    assert {c["case"]: c["false_faces"] for c in report["cases"] if c["false_faces"]} == {}


def test_each_kind_of_case_is_there(report):
    kinds = {c["kind"] for c in report["cases"]}
    assert {"scale", "rotation", "tight", "padded", "several", "faceless"} <= kinds
    sizes = [w for c in D.synthetic_cases() if c.kind == "scale" for w in c.face_widths]
    assert min(sizes) <= 41 and max(sizes) >= 690   # ~40 px faces to most of the frame
    tilts = [math.degrees(math.atan2(r[1] - l[1], r[0] - l[0])) for c in D.synthetic_cases()
             if c.kind == "rotation" for l, r in c.eyes]
    assert min(tilts) < -27 and max(tilts) > 30  # her eye line tilts 2.6 degrees in the original


def test_true_eyes_follow_the_warp():
    # the ground truth itself: an identity paste keeps the hand-set eyes; a known similarity moves them
    canvas = np.zeros((512, 512, 3), np.uint8)
    assert np.allclose(D.paste(canvas, np.array([[1.0, 0, 0], [0, 1.0, 0]])), D.ASTRONAUT_EYES)
    m = D.similarity(50.0, 30.0, (100.0, 200.0))
    (lx, ly), (rx, ry) = D.paste(np.zeros((300, 300, 3), np.uint8), m)
    assert math.hypot(rx - lx, ry - ly) == pytest.approx(50.0)
    (olx, oly), (orx, ory) = D.ASTRONAUT_EYES
    own = math.degrees(math.atan2(ory - oly, orx - olx))
    assert math.degrees(math.atan2(ry - ly, rx - lx)) == pytest.approx(30.0 + own)
    assert ((lx + rx) / 2, (ly + ry) / 2) == pytest.approx((100.0, 200.0))


def test_largest_only_returns_the_largest_face(detector):
    case = next(c for c in D.synthetic_cases() if c.name == "three faces side by side")
    every = detector.detect(case.rgb)
    largest = detector.detect(case.rgb, largest_only=True)
    assert len(every) == 3
    assert max(f.area for f in largest) == pytest.approx(max(f.area for f in every), rel=0.05)
    truth = max(case.eyes, key=lambda e: math.dist(*e))
    assert D.eye_error(max(largest, key=lambda f: f.area).eyes, truth) < 0.05


def test_faces_report_how_they_were_found(detector):
    case = next(c for c in D.synthetic_cases() if c.kind == "tight")
    (face,) = detector.detect(case.rgb)
    assert face.eyes_from == "landmarks" and "refined upright" in face.how
    assert len(face.landmarks) == 6 and face.eyes == face.landmarks[:2]
    assert face.eyes[0][0] < face.eyes[1][0]  # image-left eye first


def test_shipped_files_are_checked_against_their_sha256(tmp_path):
    files = B.DetectorFiles()
    manifest = json.loads((files.path / "detector.json").read_text())
    assert set(manifest["graphs"]) == {"front128", "back256"}
    for name in ("LICENSE", "NOTICE"):
        assert (files.path / name).is_file()
    assert "Apache License" in (files.path / "LICENSE").read_text()
    copy = tmp_path / "blazeface"
    shutil.copytree(files.path, copy)
    entry = manifest["graphs"]["front128"]
    data = bytearray((copy / entry["path"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / entry["path"]).write_bytes(bytes(data))
    with pytest.raises(EngineError, match="sha256"):
        B.BlazeFaceDetector(folder=copy)
    (copy / entry["path"]).unlink()
    with pytest.raises(EngineError, match="missing"):
        B.BlazeFaceDetector(folder=copy)


def test_graph_signature_matches_detector_json():
    ort = pytest.importorskip("onnxruntime")
    files = B.DetectorFiles()
    for name, entry in files.manifest["graphs"].items():
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(files.path / entry["path"]), opts, providers=["CPUExecutionProvider"])
        assert [(i.name, i.shape) for i in sess.get_inputs()] == [(t["name"], t["shape"]) for t in entry["inputs"]]
        assert [(o.name, o.shape) for o in sess.get_outputs()] == [(t["name"], t["shape"]) for t in entry["outputs"]]


def test_anchors_and_decoding():
    assert B.ANCHORS.shape == (896, 2)
    assert B.ANCHORS[0] == pytest.approx((0.5 / 16, 0.5 / 16)) and B.ANCHORS[1] == pytest.approx(B.ANCHORS[0])
    assert B.ANCHORS[512] == pytest.approx((0.5 / 8, 0.5 / 8))
    # one anchor with a known regression: its box and landmarks come out in input pixels (centres at integers)
    reg = np.zeros((1, 896, 16), np.float32)
    reg[0, 40, :4] = (3.0, -2.0, 20.0, 24.0)
    reg[0, 40, 4:6] = (-5.0, -6.0)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    logits[0, 40] = 4.0
    scores, boxes, lms = B.decode([logits[:, :512], logits[:, 512:], reg[:, :512], reg[:, 512:]], 128)
    ax, ay = B.ANCHORS[40] * 128 - 0.5
    assert scores[40] == pytest.approx(1 / (1 + math.exp(-4)))
    assert boxes[40] == pytest.approx((ax + 3, ay - 2, 20, 24))
    assert lms[40, 0] == pytest.approx((ax - 5, ay - 6))


def test_blend_nms_merges_overlaps_by_score_and_keeps_separate_faces():
    scores = np.array([0.9, 0.6, 0.8, 0.3])
    boxes = np.array([[50, 50, 20, 20], [52, 50, 20, 20], [10, 10, 8, 8], [50, 50, 20, 20]], float)
    lms = np.repeat(boxes[:, None, :2], 6, axis=1)
    out = B.blend_nms(scores, boxes, lms, min_score=0.5)
    assert len(out) == 2
    (s0, b0, l0), (s1, b1, _) = out
    assert s0 == 0.9 and b0[0] == pytest.approx((50 * 0.9 + 52 * 0.6) / 1.5) and l0[0, 0] == pytest.approx(b0[0])
    assert s1 == 0.8 and b1[0] == 10


def test_mirror_landmarks_swap_left_and_right():
    lm = np.array([[[10, 5], [30, 6], [20, 15], [20, 25], [2, 10], [38, 11]]], float)
    m = B.mirror_landmarks(lm, 40)
    assert m[0, 0] == pytest.approx((39 - 30, 6)) and m[0, 1] == pytest.approx((39 - 10, 5))
    assert m[0, 4] == pytest.approx((39 - 38, 11)) and m[0, 2] == pytest.approx((19, 15))


def test_pyramid_warp_matches_a_direct_warp():
    import cv2
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8), (0, 0), 6)  # smooth: no aliasing
    m = B.square_map(400, 300, 700, 128, angle=0.3)
    direct = cv2.warpAffine(img, m, (128, 128), flags=cv2.INTER_LINEAR)
    via = B.warp_input(B.Pyramid(img), m, 128)
    assert np.abs(via.astype(int) - direct).mean() < 1.5


def test_backends_agree():
    pytest.importorskip("openvino")
    from faceedit.engine.backends.onnxruntime_cpu import OnnxRuntimeCPU
    from faceedit.engine.backends.openvino import OpenVINOCPU
    case = next(c for c in D.synthetic_cases() if c.kind == "rotation")
    a = make_detector(backend=OnnxRuntimeCPU(threads=1)).detect(case.rgb)
    b = make_detector(backend=OpenVINOCPU(threads=1)).detect(case.rgb)
    assert len(a) == len(b) == 1
    assert np.abs(np.subtract(a[0].eyes, b[0].eyes)).max() < 0.01 * math.dist(*case.eyes[0])


def test_make_detector_choices_and_errors(tmp_path):
    assert make_detector().name == "blazeface"
    assert make_detector("haar").name == "haar"
    with pytest.raises(EngineError, match="unknown detector"):
        make_detector("mtcnn")
    with pytest.raises(EngineError, match="goes with detector yunet") as e:
        make_detector("blazeface", tmp_path / "x.onnx")
    assert e.value.field == "detector_model"
    with pytest.raises(EngineError, match="needs its model file"):
        make_detector("yunet")
    with pytest.raises(EngineError, match="not found"):
        make_detector(None, tmp_path / "x.onnx")  # a model file alone means YuNet


def test_haar_stays_available(detector):
    case = next(c for c in D.synthetic_cases() if c.name.startswith("padded"))
    faces = make_detector("haar").detect(case.rgb)
    assert D.match(faces, case.eyes)[0] is not None


def test_a_coarse_candidate_that_failed_refinement_does_not_hide_a_better_one():
    """A finer pass's better-scored view of a region whose coarser candidate failed refinement is tried; one
    that scores no better than the failed candidate is not tried again, and a confirmed face hides both."""
    def hit(score, cx):
        return B.Hit(score, np.array([cx, 100.0, 40.0, 40.0]), np.zeros((6, 2)), "test")
    failed = hit(0.54, 100)
    assert [h.score for h in B.BlazeFaceDetector._new([hit(0.84, 104)], [], [failed])] == [0.84]
    assert B.BlazeFaceDetector._new([hit(0.52, 104)], [], [failed]) == []
    assert B.BlazeFaceDetector._new([hit(0.84, 104)], [hit(0.9, 102)], [failed]) == []


def test_the_astronaut_pasted_small_into_a_scene_is_found():
    """The load benchmark's photo 89: her portrait ~310 px into a 1675x910 rocket scene (her face ~110 px)."""
    from faceedit.bench.loadgen import photos
    from faceedit.engine.imageio import read_photo_bytes
    rgb = read_photo_bytes(photos()[89][0]).rgb
    faces = make_detector().detect(rgb)
    assert len(faces) == 1 and faces[0].eyes_from == "landmarks" and 60 < faces[0].box[2] < 160
