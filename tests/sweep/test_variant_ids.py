"""variant_id is a stable name for an architecture: the same spec however it is written, and
never the same for two different specs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from sweep.space import expand
from sweep.variant import ID_LENGTH, Variant, canonical_json, variant_id

PRESETS = Path(__file__).resolve().parents[2] / "conf" / "search_space"

# One space, written five ways. Same variants, same ids, same order.
BLOCK = """
name: ids
shared:
  M: [160, 320]
  hyper: {type: conv, N: 128}
families:
  - name: elic
    transform:
      type: elic
      channels: [[128, 256, 256], [192, 192, 192]]
      num_res_blocks: [2, 3]
    entropy:
      type: charm
      lrp_merge: [add, concat]
"""

REORDERED = """
families:
  - entropy:
      lrp_merge: [add, concat]
      type: charm
    transform:
      num_res_blocks: [2, 3]
      channels: [[128, 256, 256], [192, 192, 192]]
      type: elic
    name: elic
shared:
  hyper: {N: 128, type: conv}
  M: [160, 320]
name: ids
"""

# Every default spelled out, numbers written as floats, the grid moved from shared to the family.
DEFAULTS_SPELLED_OUT = """
name: ids
families:
  - name: elic
    M: {values: [160.0, 320.0]}
    transform: {type: elic, channels: {values: [[128, 256, 256], [192, 192, 192]]}, num_res_blocks: {from: 2, to: 3}}
    entropy:
      type: charm
      num_slices: 10
      max_support_slices: 5
      slice_widths: [224, 128]
      slice_kernel: 5
      slice_taper: false
      lrp: true
      lrp_merge: [add, concat]
      hyper_heads: shared
    hyper: {type: conv, N: 128.0, layout: minnen2018}
"""

# Flow style, comments, quoted strings, a shorthand component type.
REFORMATTED = """
# the same space, squeezed
{name: "ids", shared: {M: [160, 320], hyper: {type: 'conv', N: 128}},  # shared
 families: [{name: elic,
             transform: {type: elic, channels: [[128,256,256],[192,192,192]], num_res_blocks: [2,3]},
             entropy: {type: "charm", lrp_merge: ["add", "concat"]}}]}
"""

# The same grid as two one_of alternatives of a family.
SPLIT = """
name: ids
shared: {M: [160, 320], hyper: {type: conv, N: 128}, entropy: charm}
families:
  - name: elic
    transform: {type: elic, num_res_blocks: [2, 3]}
    entropy: {lrp_merge: [add, concat]}
    one_of:
      - {transform: {channels: [128, 256, 256]}}
      - {transform: {channels: [192, 192, 192]}}
"""


def ids(text: str) -> list[str]:
    return [v.variant_id for v in expand(yaml.safe_load(text))]


def test_key_order_defaults_and_formatting_do_not_change_ids():
    reference = ids(BLOCK)
    assert len(reference) == 2 * 2 * 2 * 2
    assert ids(REORDERED) == reference
    assert ids(DEFAULTS_SPELLED_OUT) == reference
    assert ids(REFORMATTED) == reference


def test_splitting_a_grid_into_alternatives_keeps_every_id():
    assert sorted(ids(SPLIT)) == sorted(ids(BLOCK))


def test_the_id_is_sha256_of_the_sorted_compact_json_spec():
    # Pinned: a change here renames every run users have in MLflow.
    spec = {"transform": {"type": "conv", "N": 128}, "M": 192, "hyper": {"N": 128, "type": "conv"},
            "entropy": {"type": "hyperprior"}}
    text = '{"M":192,"entropy":{"type":"hyperprior"},"hyper":{"N":128,"type":"conv"},"transform":{"N":128,"type":"conv"}}'
    assert canonical_json(spec) == text
    assert variant_id(spec) == hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH] == "225475b5339c90d3"


def test_ids_are_the_hash_of_what_the_variant_carries():
    for variant in expand(yaml.safe_load(BLOCK)):
        assert variant.variant_id == variant_id(json.loads(variant.spec_json))
        assert Variant.from_canonical(variant.spec, variant.family, variant.group) == variant


def test_no_two_different_specs_share_an_id_over_every_preset():
    seen: dict[str, str] = {}
    for path in sorted(PRESETS.glob("*.yaml")):
        for variant in expand(yaml.safe_load(path.read_text())):
            assert seen.setdefault(variant.variant_id, variant.spec_json) == variant.spec_json, path.name
    paper = expand(yaml.safe_load((PRESETS / "paper.yaml").read_text()))
    assert len({v.variant_id for v in paper}) == len({v.spec_json for v in paper}) == len(paper) >= 571
