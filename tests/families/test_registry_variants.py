"""The family registry's task variants: same name and models as a base family, another task."""
import pytest

from mixnas.families import Family, families, family_for_task, family_named, family_of, registry
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.family import LMFamily
from mixnas.families.mqar.family import MQARFamily


@pytest.fixture
def isolated(monkeypatch):
    """A registry holding the built-in families, restored after the test."""
    families()
    monkeypatch.setattr(registry, "_FAMILIES", list(registry._FAMILIES))


def test_builtin_variant_lookups():
    lm, mqar = family_for_task("language-modeling"), family_for_task("mqar")
    assert type(lm) is LMFamily and type(mqar) is MQARFamily and mqar.variant and not lm.variant
    assert mqar.name == lm.name == "lm" and family_named("lm") is lm
    arch = LMArch(embed_dim=8, layers=(LMLayerArch(ffn_dim=8, heads=1, attention="softmax"),), head_dim=8)
    assert family_of(arch) is lm  # a model has one family: the base, whatever task trained it
    assert lm in families() and mqar in families()
    assert (mqar.test_metric, mqar.test_higher_is_better, mqar.val_metrics) == ("accuracy", True, ("loss", "accuracy"))


def test_register_variant_and_refuse_clashes(isolated):
    class Recall(LMFamily):
        variant, task = True, "recall-test"

    recall = Recall()
    assert registry.register(recall) is recall and registry.register(Recall()) is recall  # re-import: kept
    assert family_for_task("recall-test") is recall and family_named("lm") is family_for_task("language-modeling")

    class Unrelated(LMFamily):  # same name, not declared a variant: a clash
        task = "other-test"

    with pytest.raises(ValueError, match="clashes with"):
        registry.register(Unrelated())

    class SameTask(LMFamily):  # a variant cannot take a registered task
        variant, task = True, "mqar"

    with pytest.raises(ValueError, match="clashes with"):
        registry.register(SameTask())

    class Orphan(Family):  # a variant of nothing registered
        variant, name, task = True, "nothing", "orphan-test"

    class Imposter(Family):  # named like lm, but not its subclass: not the same models
        variant, name, task = True, "lm", "imposter-test"

    for family, name in ((Orphan(), "nothing"), (Imposter(), "lm")):
        with pytest.raises(ValueError, match=f"no family '{name}' of its base class"):
            registry.register(family)
