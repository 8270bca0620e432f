"""Variations: one draft into the drafts of a batch, priced with its arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from studio.catalog import default_catalog
from studio.generation import InvalidRequest, JobDraft
from studio.variations import VariationKind, Variations, quote_batch

CATALOG = default_catalog()
DRAFT = JobDraft(model="wan2.2-i2v-flash", resolution="480P", prompt="a fox in the snow")


def test_seeds_count_up_from_a_fixed_seed_and_wrap_inside_the_range() -> None:
    seeds = Variations(VariationKind.SEEDS, count=3)
    near_the_top = JobDraft(model="wan2.2-i2v-flash", seed=CATALOG.limits.seed_max - 1)

    assert [draft.seed for draft in seeds.expand(near_the_top, CATALOG)] == [
        CATALOG.limits.seed_max - 1,
        CATALOG.limits.seed_max,
        CATALOG.limits.seed_min,
    ]
    assert [draft.seed for draft in seeds.expand(DRAFT, CATALOG)] == [None, None, None]


def test_one_clip_per_non_blank_prompt_line() -> None:
    prompts = Variations.of_prompt_lines("a slow push-in\n\n  hair in the wind  \na smile\n")

    drafts = prompts.expand(DRAFT, CATALOG)

    assert [draft.prompt for draft in drafts] == ["a slow push-in", "hair in the wind", "a smile"]
    assert {draft.model for draft in drafts} == {DRAFT.model}


def test_models_keep_the_chosen_options_where_offered_and_their_defaults_elsewhere() -> None:
    models = Variations(
        VariationKind.MODELS, models=("wan2.2-i2v-flash", "wan2.1-i2v-plus", "wan2.2-i2v-plus")
    )

    drafts = models.expand(DRAFT, CATALOG)

    assert [(draft.model, draft.resolution) for draft in drafts] == [
        ("wan2.2-i2v-flash", "480P"),
        ("wan2.1-i2v-plus", None),  # it makes 720P only: its default
        ("wan2.2-i2v-plus", "480P"),
    ]


@pytest.mark.parametrize(
    ("variations", "message"),
    [
        (Variations(VariationKind.SEEDS, count=1), "give 2 to 8 clips (now 1)"),
        (Variations(VariationKind.SEEDS, count=9), "give 2 to 8 clips (now 9)"),
        (Variations.of_prompt_lines("only one"), "2 to 8 prompts, one a line (now 1)"),
        (Variations(VariationKind.MODELS, models=("wan2.2-i2v-flash",)), "Choose 2 or 3 models"),
        (
            Variations(VariationKind.MODELS, models=("wan2.2-i2v-flash", "wan2.2-i2v-flash")),
            "Choose each model once",
        ),
        (Variations(VariationKind.MODELS, models=("wan2.2-i2v-flash", "sora")), "from the list"),
    ],
)
def test_a_batch_outside_its_bounds_says_what_to_change(
    variations: Variations, message: str
) -> None:
    problems = variations.problems(CATALOG)

    assert [problem.field for problem in problems] == ["variations"]
    assert message in problems[0].message


def test_the_batch_price_shows_its_arithmetic_and_its_seconds() -> None:
    same = quote_batch(Variations(VariationKind.SEEDS, count=4).expand(DRAFT, CATALOG), CATALOG)
    mixed = quote_batch(
        Variations(VariationKind.MODELS, models=("wan2.2-i2v-flash", "wan2.1-i2v-plus")).expand(
            DRAFT, CATALOG
        ),
        CATALOG,
    )

    each = same.quotes[0].cost_usd
    assert same.total_usd == 4 * each
    assert same.arithmetic() == f"4 × ${each:.3f} = ${4 * each:.3f}"
    assert same.summary() == "4 clips, 20 seconds of video"
    assert mixed.arithmetic().count(" + ") == 1
    assert mixed.total_usd == sum(quote.cost_usd for quote in mixed.quotes)


def test_only_a_costly_billed_batch_asks_to_be_confirmed() -> None:
    cheap = quote_batch(Variations(VariationKind.SEEDS, count=2).expand(DRAFT, CATALOG), CATALOG)
    costly = quote_batch(
        Variations(VariationKind.SEEDS, count=8).expand(
            JobDraft(model="wan2.2-i2v-plus", resolution="1080P"), CATALOG
        ),
        CATALOG,
    )

    assert costly.total_usd > Decimal("2.00")
    assert costly.needs_confirmation(billed=True)
    assert not costly.needs_confirmation(billed=False)
    assert not cheap.needs_confirmation(billed=True)


def test_a_model_the_catalog_does_not_offer_cannot_be_priced() -> None:
    drafts = Variations(VariationKind.MODELS, models=("wan2.2-i2v-flash", "sora")).expand(
        DRAFT, CATALOG
    )

    with pytest.raises(InvalidRequest):
        quote_batch(drafts, CATALOG)
