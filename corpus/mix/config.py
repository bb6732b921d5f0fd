"""Config sections of the `mix` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from corpus.sections import Part, Section


RATIO_TOLERANCE = 1e-3  # how far from 1 an output's ratios may sum (rounding in a hand-written config)


class MixOutput(Section):
    """One named training mix: token shares by part."""

    ratios: dict[Part, float] = Field(
        description="Target share of the output's tokens by part; the shares must sum to 1 (within 0.001: a sum "
        "of 1.1 is a typo, not a wish to normalise). A part left out gets none."
    )
    max_epochs: dict[Part, float] | float = Field(
        4.0,
        description="Most times a part's tokens may be repeated "
        "(one number for all parts, or by part). Default 4: Muennighoff et "
        "al. 2023 found up to ~4 epochs of repeated data almost as good "
        "as new data.",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Cap on the output's tokens; default: as many as the ratios and `max_epochs` allow."
    )
    when_short: Literal["shrink", "redistribute"] = Field(
        "shrink",
        description="When a part cannot supply its "
        "share even at `max_epochs`: `shrink` the whole output so "
        "every ratio holds exactly, or `redistribute` (use that "
        "part up and share the rest over the others in "
        "proportion; achieved ≠ target, reported).",
    )

    @field_validator("ratios")
    @classmethod
    def _positive(cls, value: dict) -> dict:
        if any(v < 0 for v in value.values()):
            raise ValueError("ratios must not be negative")
        if sum(value.values()) <= 0:
            raise ValueError("ratios must have a positive share")
        total = sum(value.values())
        if abs(total - 1) > RATIO_TOLERANCE:
            raise ValueError(
                f"ratios must sum to 1; these sum to {total:g} ({', '.join(f'{p} {v:g}' for p, v in value.items())})"
            )
        return value

    @field_validator("max_epochs")
    @classmethod
    def _at_least_once(cls, value):
        low = (
            {p: v for p, v in value.items() if v < 1}
            if isinstance(value, dict)
            else ({"all parts": value} if value < 1 else {})
        )
        if low:
            raise ValueError(
                "max_epochs must be at least 1 (every chosen token is used once at least): "
                + ", ".join(f"{p} {v:g}" for p, v in low.items())
            )
        return value

    def epochs(self, part: str) -> float:
        return self.max_epochs.get(part, 4.0) if isinstance(self.max_epochs, dict) else self.max_epochs

    def shares(self) -> dict[str, float]:
        total = sum(self.ratios.values())
        return {p: v / total for p, v in sorted(self.ratios.items()) if v > 0}


def _default_mix_outputs() -> dict[str, MixOutput]:
    return {
        # Hephaestus-Forge stage I: ~36% agent data, the rest code and general text about equally (REFERENCES.md)
        "stage1": MixOutput(
            ratios={
                "tool_doc": 0.16,
                "trajectory": 0.08,
                "agent_web": 0.06,
                "instruction": 0.06,
                "code": 0.32,
                "text": 0.32,
            }
        ),
        # stage II: continued pretraining on the high-quality seed agent data only
        "stage2": MixOutput(ratios={"tool_doc": 0.40, "trajectory": 0.30, "instruction": 0.30}),
    }


class MixSection(Section):
    """The `mix` stage: which documents (and how many copies) go into each named output, by token ratios."""

    enabled: bool = Field(
        True,
        description="Run the stage in `forge run`; off: `write` writes every document once, "
        "as one output named after the run.",
    )
    outputs: dict[str, MixOutput] = Field(
        default_factory=_default_mix_outputs,
        description="Named outputs, each "
        "written as its own shards and manifest under `write/<name>/`. Default: "
        "`stage1` and `stage2` (Hephaestus-Forge's two pretraining stages).",
    )
    tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="How far a part's achieved token share may be from its target (absolute: 0.01 is one "
        "percentage point) before the output counts as missed: the mix stage warns, and `forge run` exits 3 "
        "unless `--allow-partial` is given. Outputs with `when_short: redistribute` accept misses by design "
        "and are only reported.",
    )

    @field_validator("outputs")
    @classmethod
    def _names(cls, value: dict) -> dict:
        import re

        if not value:
            raise ValueError("at least one output")
        bad = [k for k in value if not re.fullmatch(r"[A-Za-z0-9_.-]+", k)]
        if bad:
            raise ValueError(f"output names must be letters, digits, _ . - (got {bad})")
        return value
