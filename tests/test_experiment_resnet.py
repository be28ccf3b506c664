"""The ResNet chapter's reproduction check: each claim's threshold on small hand-made results."""

import pandas as pd

from racecar_core.experiments import resnet

CPU = resnet.CHAPTER.configure("cpu")
WHERE = resnet.setting(CPU, "MNIST digits padded to 32×32", 0.1)


def results(acc=None, sim=None, rr_err=0.5, std_err=2.0, moved=None):
    acc = acc or {"Std": 0.90, "Ort": 0.91, "RR": 0.93}
    sim = sim or {"Std": 0.2, "Ort": 0.2, "RR": 0.5}
    moved = moved or {"Scratch": 0.3, "Std": 0.4, "Ort": 0.4, "RR": 0.5}
    seeds = range(3)
    frame = pd.DataFrame([{"variant": v, "seed": s, "test_acc": acc[v], "first_layer_similarity": sim[v],
                           "rec_err_mean": rr_err if v == "RR" else std_err} for v in ("Std", "Ort", "RR") for s in seeds])
    layers = pd.DataFrame([{"variant": v, "seed": s, "layer": m, "rel_err": rr_err if v == "RR" else std_err}
                           for v in ("Std", "Ort", "RR") for s in seeds for m in (1, 2, 3)])
    transfer = pd.DataFrame([{"start": k, "seed": s, "test_acc": v} for k, v in moved.items() for s in seeds])
    return frame, layers, transfer


def verdicts(*args, cfg=CPU):
    return {c.key: c.verdict for c in resnet.claims(*args, cfg, WHERE)}


def test_the_paper_accuracy_claim_is_not_testable_on_a_stand_in():
    v = verdicts(*results())
    assert v == {"accuracy": "not testable here", "layers": "reproduced", "first_layer": "reproduced",
                 "transfer": "reproduced"}
    claim = resnet.claims(*results(), CPU, WHERE)[0]
    assert claim.paper == "Std 92.1%, Ort 92.5%, RR 92.8%" and claim.source.startswith("Fig. 1c")


def test_accuracy_is_judged_in_the_paper_setting():
    cfg = CPU.__class__({**CPU, "dataset": "cifar10", "depth": 110, "n_train": 0, "n_test": 0})
    assert resnet.paper_setting(cfg)
    assert verdicts(*results(), cfg=cfg)["accuracy"] == "reproduced"
    assert verdicts(*results(acc={"Std": 0.93, "Ort": 0.91, "RR": 0.92}), cfg=cfg)["accuracy"] == "not reproduced"


def test_layers_partly_when_rr_is_below_std_but_not_below_one():
    assert verdicts(*results(rr_err=1.5, std_err=2.0))["layers"] == "partly reproduced"
    assert verdicts(*results(rr_err=2.5, std_err=2.0))["layers"] == "not reproduced"


def test_first_layer_and_transfer_thresholds():
    assert verdicts(*results(sim={"Std": 0.2, "Ort": 0.6, "RR": 0.5}))["first_layer"] == "partly reproduced"
    assert verdicts(*results(moved={"Scratch": 0.3, "Std": 0.6, "Ort": 0.4, "RR": 0.5}))["transfer"] == "not reproduced"


def test_headline_numbers_for_sweeps():
    frame, _, transfer = results()
    h = resnet.headline(frame, transfer, 0.1)
    assert h["test_acc RR"] == 0.93 and h["transfer_acc Scratch"] == 0.3 and h["lambda_rr"] == 0.1
