"""The versioned JSON API. Photos are sent as the raw request body (any format Pillow reads), options as query
parameters: `curl --data-binary @me.jpg 'http://127.0.0.1:8000/v1/edit?set=smiling=0&set=young=1'`.
A raw body (not multipart) keeps uploads in memory: Starlette spools multipart files to a temporary file."""
from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from faceedit.engine.errors import EngineError
from faceedit.engine.prior import fresh_seed
from faceedit.serve.http_errors import classify
from faceedit.engine.photo import parse_face_choice
from faceedit.serve.limits import check_image_type, read_upload
from faceedit.engine.results import FaceEdit
from faceedit.serve.service import MAX_SAMPLES, b64, encode_image, output_format, parse_sets

router = APIRouter(prefix="/v1", tags=["faceedit"])

IMAGE_BODY = {"requestBody": {"required": True, "description": "The photo: JPEG, PNG, WebP, BMP, TIFF ... as the raw body.",
                              "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}}
FACE_HELP = "Which faces: largest, all, or a face number (0 = leftmost)."
ALIGNED_HELP = "The photo is already an aligned face (CelebA framing or the model's square crop): no detection."


class Face(BaseModel):
    index: int = Field(description="Face number among those found, left to right")
    box: List[int] = Field(description="x, y, width, height in photo pixels")
    eyes: Optional[List[List[float]]] = Field(None, description="Eye centres [[x, y], [x, y]] (null for aligned input)")
    found: str = Field(description="How the face was found or framed")
    attributes: Dict[str, float] = Field(description="Attribute probabilities of the input face")
    attributes_after: Optional[Dict[str, float]] = Field(None, description="Attribute head on the result")
    auto_strength: Optional[Dict[str, float]] = Field(None, description="Attribute -> multiplier auto strength pushed its gain by")
    implied: Optional[Dict[str, int]] = Field(None, description="Attributes an implied rule set (value 0 or 1)")
    crop: Optional[str] = Field(None, description="Base64 PNG of the aligned input crop (reconstruct)")
    reconstruction: Optional[str] = Field(None, description="Base64 PNG of the decoder's reconstruction (reconstruct)")
    edit_mask: Optional[str] = Field(None, description="Base64 PNG (grey, model size) of where the edit applied: a "
                                     "model with an edit mask leaves the photo as it was where this is black (edit)")
    skipped: Optional[str] = Field(None, description="Why this face was found but not edited or read (too small)")


class AttributesOut(BaseModel):
    width: int
    height: int
    faces_found: int
    faces: List[Face]


class EditOut(BaseModel):
    width: int
    height: int
    format: str
    media_type: str
    image: str = Field(description="Base64 of the full-resolution edited photo")
    faces_found: int
    faces: List[Face]
    elapsed_ms: float


class ReconstructOut(BaseModel):
    faces_found: int
    faces: List[Face]


class SamplesIn(BaseModel):
    attributes: Dict[str, float] = Field(default_factory=dict, description="name -> value (0 off, 1 on, -1..2); others at the model's defaults")
    count: int = Field(8, ge=1, le=MAX_SAMPLES, description=f"How many faces (1..{MAX_SAMPLES})")
    seed: Optional[int] = Field(None, ge=0, lt=2**63, description="Same seed, same faces (none: a fresh one, given back in the answer)")
    format: str = Field("png", description="png, jpeg or webp")


class SamplesOut(BaseModel):
    format: str
    media_type: str
    images: List[str] = Field(description="Base64 images, each the model's size")
    seed: Optional[int] = Field(None, description="The seed they were drawn with (send it again for the same faces)")
    prior: Optional[Dict] = Field(None, description="How they were drawn: the latent prior's kind, temperature, sha256 "
                                  "(engine.prior)")
    warnings: List[str] = Field(default_factory=list, description="Attributes asked for that the model draws badly, "
                                "by the figures its manifest holds for this prior (none without figures)")


def _rounded(probs: dict) -> dict:
    return {n: round(float(p), 5) for n, p in probs.items()}


def _face(f: FaceEdit, after: bool) -> Face:
    d = dict(index=f.index, box=list(f.box), eyes=[list(e) for e in f.eyes] if f.eyes else None, found=f.how,
             attributes=_rounded(f.before))
    if f.skipped:
        d.update(skipped=f.skipped)
    elif after:
        d.update(attributes_after=_rounded(f.after), auto_strength=f.pushed, implied=f.implied)
        if f.edit_mask is not None:
            grey = (np.clip(f.edit_mask, 0, 1) * 255 + 0.5).astype(np.uint8)
            d.update(edit_mask=b64(encode_image(np.repeat(grey[:, :, None], 3, 2), None, "PNG")))
    if f.extra:
        d.update(crop=b64(f.extra["crop"]), reconstruction=b64(f.extra["reconstruction"]))
    return Face(**d)


def _service(request: Request):
    return request.app.state.service


def raw_photo(request: Request):
    """The upload routes' body is the raw photo: 415 for a multipart form or another content type, before
    anything else is read."""
    check_image_type(request.headers.get("content-type"))


PHOTO = [Depends(raw_photo)]


def checked(field: str, fn, *args, **kwargs):
    """fn(*args, **kwargs); an error becomes the JSON error of its kind, naming `field` unless it names its own."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        raise classify(e, field) from None


async def _on_upload(request: Request, method, *args):
    """Read the upload (within its byte and time limits), hand it to a FaceService method, and count its
    faces; any error becomes the one JSON error of its kind. The method's result ends with (faces found, faces)."""
    data = await read_upload(request)
    try:
        result = await method(data, *args)
    except Exception as e:
        err = classify(e)
        if err.status < 500:  # its traceback's frames hold the decoded photo, and nothing needs them
            e.__traceback__ = None
        raise err from None
    request.app.state.metrics.faces.observe(result[-2])
    return result


@router.get("/model", summary="Model info: attribute names, value range, model id and checksum, backend")
async def model_info(request: Request) -> dict:
    return _service(request).model_info()


@router.post("/attributes", response_model=AttributesOut, openapi_extra=IMAGE_BODY, dependencies=PHOTO,
             summary="The faces in a photo: boxes, eyes and attribute probabilities")
async def attributes(request: Request, face: str = Query("all", description=FACE_HELP),
                     aligned: bool = Query(False, description=ALIGNED_HELP)):
    checked("face", parse_face_choice, face)
    (h, w), n, faces = await _on_upload(request, _service(request).attributes, face, aligned)
    return AttributesOut(width=w, height=h, faces_found=n, faces=[_face(f, False) for f in faces])


@router.post("/edit", response_model=EditOut, openapi_extra=IMAGE_BODY, dependencies=PHOTO,
             summary="Edit the attributes of faces in a photo; the full-resolution result and before/after attributes")
async def edit(request: Request,
               set_: List[str] = Query([], alias="set", description="NAME=VALUE: 0 off, 1 on, in between interpolates, -1..2 extrapolates. Repeatable."),
               face: str = Query("largest", description=FACE_HELP),
               aligned: bool = Query(False, description=ALIGNED_HELP),
               raw: bool = Query(False, description="Paste the decoder's raw output (colour-matched) instead of the residual edit."),
               fixed_strength: bool = Query(False, description="No auto strength: every edit at its attribute's gain."),
               literal: bool = Query(False, description="Change only the attributes named: no implied attributes."),
               unfiltered: bool = Query(False, description="Add the model's change as it comes: no guided filter "
                                                            "(which keeps the photo's edges and drops the decoder's stripes)."),
               format: str = Query("png", description="png, jpeg or webp")):
    t = time.perf_counter()
    svc = _service(request)
    try:
        changes = parse_sets(set_)
        if not changes:
            raise EngineError("nothing to change: give at least one set=NAME=VALUE (see /v1/model for names)")
        # resolved once, options included: the EditRequest travels down to the decoder
        edit_request = svc.editor.request(changes, raw=raw, auto_strength=not fixed_strength, implied=not literal,
                                          filtered=not unfiltered)
    except Exception as e:  # a bad name or value: refused before the upload is read
        raise classify(e, "set") from None
    checked("face", parse_face_choice, face)
    checked("format", output_format, format)
    encoded, fmt, (h, w), n, faces = await _on_upload(request, svc.edit, edit_request, face, aligned, format)
    return EditOut(width=w, height=h, format=fmt.lower(), media_type=f"image/{fmt.lower()}", image=b64(encoded),
                   faces_found=n, faces=[_face(f, True) for f in faces], elapsed_ms=round((time.perf_counter() - t) * 1000, 2))


@router.post("/reconstruct", response_model=ReconstructOut, openapi_extra=IMAGE_BODY, dependencies=PHOTO,
             summary="The model's reconstruction of faces in a photo (its own attributes), beside the aligned crop")
async def reconstruct(request: Request, face: str = Query("largest", description=FACE_HELP),
                      aligned: bool = Query(False, description=ALIGNED_HELP)):
    checked("face", parse_face_choice, face)
    n, faces = await _on_upload(request, _service(request).reconstruct, face, aligned)
    return ReconstructOut(faces_found=n, faces=[_face(f, True) for f in faces])


@router.post("/samples", response_model=SamplesOut, summary="New faces drawn with the given attributes")
async def samples(request: Request, body: SamplesIn):
    svc = _service(request)
    seed = fresh_seed() if body.seed is None else body.seed  # chosen here, so the answer can say which
    checked("format", output_format, body.format)
    try:
        how = svc.editor.sampling(body.attributes, seed)  # a bad name or value: refused here
        images = await svc.samples(body.attributes, body.count, seed, body.format)
    except Exception as e:
        raise classify(e, "attributes", {"set": "attributes"}) from None
    fmt = "jpeg" if body.format.lower() == "jpg" else body.format.lower()
    return SamplesOut(format=fmt, media_type=f"image/{fmt}", images=[b64(i) for i in images], seed=seed,
                      prior=how["prior"], warnings=how["warnings"])
