"""Which interpretation's advantage survives tempering? (pft.degrade on a toy of superposition)

Run:  python examples/degrade_toy.py        (about a minute on a 2-core laptop CPU)

An interpretation that beats another on one trained network might do so for reasons that
are accidents of those exact weights. Here we

1. train a toy model of superposition (24 sparse features of decaying importance squeezed
   into 8 dimensions, Elhage et al. 2022) and measure its local learning coefficient λ̂:
   far below d/2, i.e. a singular minimum where pft's Laplace expansion does not apply;
2. draw naturally degraded copies of it from the tempered local posterior
   p_β(w) ∝ exp(-nβ L(w) - (γ/2)‖w - w*‖²) at temperatures 1/β = 0, 1, 4, 16 × log n;
3. score three fixed interpretations of its hidden activations on every copy with
   pft.residual.score: the full dictionary, the dictionary without the 4 least important
   features, and the dictionary without the 3 most important ones;
4. print which advantages (in held-out non-Gaussian bits of the residual) survive.
"""

import math
import warnings

import numpy as np
import torch

import pft.toy
from pft.degrade import MixingWarning, TemperedPosterior, degraded_models
from pft.degrade._toymodel import train_toy_model
from pft.residual._across import score_across

SEED = 0
N_FEATURES, D = 24, 8

# 1. Data and the trained model. Feature f is active with probability 0.05 and its code is
#    scaled by 0.93^f, so the last features matter least to the loss.
data = pft.toy.superposition(2000, d=D, n_features=N_FEATURES, density=0.05, seed=SEED)
codes = data.codes * 0.93 ** np.arange(N_FEATURES)
model, c = train_toy_model(codes, d=D, steps=1500, seed=SEED)
loss_fn = torch.nn.MSELoss()
n = c.shape[0]

post = TemperedPosterior(model, loss_fn, (c, c), localization=10.0, step_size=1e-5, seed=SEED)
h_max = post.max_curvature()
# Step size: ε (nβ h_max + γ) = 0.04 keeps the stiffest direction's variance within 1 %.
eps = 0.04 / (post.nbeta_ * h_max + 10.0)
post = TemperedPosterior(model, loss_fn, (c, c), localization=10.0, step_size=eps, seed=SEED)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", MixingWarning)  # short chains; the diagnostics are printed
    samples = post.sample(1000, n_chains=4, burn_in=2000, progress=False)
lc = post.learning_coefficient()
print(f"toy model: {post.d_} parameters, L(w*) = {post.init_loss_:.4g}, h_max = {h_max:.3g}, ε = {eps:.2g}")
print(lc)
print(samples.diagnostics)
print(f"=> λ̂ = {lc.value:.2f} ± {lc.se:.2f} is far below d/2 = {lc.regular_value:g}: a singular minimum.\n")

# 2-3. Degraded copies and fixed interpretations (reconstructions from the true codes and
#      the trained feature directions W*; they do not move with the copy's weights).
w_star = model.W.detach().numpy().T.copy()  # (F, d): feature directions
importance = codes.var(axis=0) * (w_star**2).sum(axis=1)
order = np.argsort(importance)
drop_rare, drop_top = order[:4], order[-3:]


def dictionary_without(drop):
    keep = np.setdiff1d(np.arange(N_FEATURES), drop)
    return codes[:, keep] @ w_star[keep]


interpretations = {
    "dictionary": codes @ w_star,
    "minus 4 least important": dictionary_without(drop_rare),
    "minus 3 most important": dictionary_without(drop_top),
}


def activations(m):
    with torch.no_grad():
        return m.hidden(c).numpy() + data.background  # the toy's Gaussian background


log_n = math.log(n)
copies = degraded_models(
    model, loss_fn, (c, c), temperatures=[0, log_n, 4 * log_n, 16 * log_n], draws_per_temperature=3,
    localization=10.0, step_size=eps, burn_in=2000, thin=200, seed=SEED, progress=False,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", MixingWarning)
    report = score_across(copies, activations, interpretations, progress=False)
print(report)

# 4. The paired advantage of the full dictionary (lower non-Gaussian bits is better).
print("\nadvantage of 'dictionary' in non-Gaussian bits (paired over the same copies):")
for other in ("minus 4 least important", "minus 3 most important"):
    print(f"  vs {other}:")
    for t, mean, se, k in report.advantage("nongaussian_bits", "dictionary", other):
        verdict = "holds" if mean > 2 * se else "not significant"
        print(f"    1/β = {t:7.3g}: {mean:+.3f} ± {se:.3f}  ({k} cop{'y' if k == 1 else 'ies'})  {verdict}")
report.plot("degrade_toy.png")
print("\nplot: degrade_toy.png (each score against temperature and against the loss increase)")
