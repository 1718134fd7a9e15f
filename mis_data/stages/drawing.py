"""Drawing one object's image from the build's image source: what the images stage does per
object and what a later stage that needs a new object (a twin's look-alike) does too.

A text-to-image prompt the provider blocks is reworded once by the text model
(``t2i_reword.md``) and drawn again; blocked twice, the object is rejected as ``blocked``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from pydantic import BaseModel

from mis_data.core.records import ImageRef, RejectReason
from mis_data.images.sources import ObjectImages
from mis_data.images.store import BadImage, StoredImage
from mis_data.images.typography import render_typography
from mis_data.models.base import ImageRequest, Problem
from mis_data.stages.base import BuildContext, ModelTask, Rejection, model_request


# The text model's new prompt for an object after a block, and why it should pass.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class Reworded(BaseModel):  # noqa: D101
    prompt: str
    reason: str


REWORD = ModelTask("t2i_reword", "text", "t2i_reword.md", Reworded)
TASKS = (REWORD,)  # what drawing asks, for whichever stage draws


@dataclass(frozen=True)
class Drawn:
    """An image made from ``prompt``; ``blocked`` is the provider's block of the prompt it
    replaced, when the first one was reworded."""

    stored: StoredImage
    prompt: str
    blocked: str | None = None


def image_prompt(ctx: BuildContext, obj: str, kind: str) -> str:
    """The first text-to-image prompt of an object (words made legible for kind ``text``)."""
    name = "t2i_prompt_text.md" if kind == "text" else "t2i_prompt.md"
    return ctx.prompts.get(name).render(object=obj, kind=kind).strip()


async def reword(ctx: BuildContext, obj: str, kind: str, prompt: str, block: str,
                 image_id: str, stage: str, sub_category: str | None) -> str | Rejection:
    """A new prompt for the same object after the provider blocked ``prompt``."""
    def check(reply: BaseModel) -> Problem | None:
        # The request's reply model is Reworded; ``Check`` is typed for any reply.
        if " ".join(cast(Reworded, reply).prompt.split()).casefold() == " ".join(prompt.split()).casefold():
            return Problem(RejectReason.invalid_output, "write a different prompt")
        return None

    result = await ctx.client.structured(model_request(
        ctx, REWORD, stage=stage, item_id=image_id,
        values={"object": obj, "kind": kind, "prompt": prompt, "block": block},
        check=check, sub_category=sub_category))
    if not result.ok:
        return Rejection.from_result(result, f"rewording the blocked prompt for {obj!r}")
    return " ".join(cast(Reworded, result.value).prompt.split())


async def draw_object(ctx: BuildContext, obj: str, kind: str, prompt: str, image_id: str,
                      stage: str, sub_category: str | None) -> Drawn | Rejection:
    """One image of ``obj``; a blocked prompt is reworded once, blocked twice it is rejected."""
    first_block = None
    for attempt in (1, 2):
        result = await ctx.client.generate_image(ImageRequest(
            item_id=image_id, prompt=prompt, stage=stage, sub_category=sub_category,
            facts={"object": obj, "style_seed": f"{ctx.config.seed}:{image_id}"}))
        if result.reason == RejectReason.blocked:
            if attempt == 2:
                return Rejection(RejectReason.blocked,
                                 f"image of {obj!r} blocked twice, the second time after "
                                 f"rewording: {result.detail}", models=tuple(result.declined_by))
            first_block = result.detail
            reworded = await reword(ctx, obj, kind, prompt, result.detail, image_id, stage,
                                    sub_category)
            if isinstance(reworded, Rejection):
                return reworded
            prompt = reworded
            continue
        if result.data is None:
            return Rejection(result.reason or RejectReason.api_error, result.detail)
        try:
            return Drawn(ctx.store.put(result.data), prompt, first_block)
        except BadImage as error:
            return Rejection(RejectReason.bad_image, f"generated image of {obj!r}: {error}")
    raise AssertionError("unreachable: the second attempt returns")


async def make_object_image(ctx: BuildContext, obj: str, kind: str, image_id: str,
                            stage: str, sub_category: str | None = None) -> ImageRef | Rejection:
    """One image of ``obj`` from the build's image source, stored (for a later stage that needs
    a new object, such as a twin's look-alike): typography, a T2I model, or the local pool."""
    source = ctx.config.images.source
    if source == "typography":
        png = render_typography(obj, f"{ctx.config.seed}:{image_id}", ctx.config.images.typography_size)
        stored, origin = ctx.store.put_png(png), "typography"
    elif source == "t2i":
        drawn = await draw_object(ctx, obj, kind, image_prompt(ctx, obj, kind), image_id, stage,
                                  sub_category)
        if isinstance(drawn, Rejection):
            return drawn
        stored, origin = drawn.stored, "t2i"
    else:
        data, where = ObjectImages(ctx.config.images.pool()).lookup(obj)
        if data is None:
            return Rejection(RejectReason.missing_image, where)
        try:
            stored, origin = ctx.store.put(data), f"{source}:{where}"
        except BadImage as error:
            return Rejection(RejectReason.bad_image, f"{where}: {error}")
    return ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height, source=origin)
