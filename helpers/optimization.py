"""The optimization of Gatys et al.: change an image until its VGG-19 features match the
photo's content and its Gram matrices match the painting's style.

`stylize(content, style, **options)` does a whole run; `StyleTransfer` is the same engine
as an object that can be run, changed (weights, learning rate) and run again from where it
stopped, which is what the interactive studio needs.
"""

import math
import threading
import time
from dataclasses import dataclass, field

import torch

from . import color, losses, memory, speed
from .config import DEFAULT_LEARNING_RATES, StyleTransferConfig
from .device import pick_device
from .errors import StyleTransferError
from .images import MIN_SIDE_PX, load_image
from .network import cached_vgg19
from .progress import Progress


@dataclass
class StyleTransferResult:
    image: torch.Tensor  #: the final image (the best one if the run was stopped early), on the CPU
    history: list  #: one dict per step: step, content, style, tv, total
    config: StyleTransferConfig
    steps_done: int
    seconds: float
    stopped: str = None  #: None if the run finished, else why it stopped
    device: str = ""
    extra: dict = field(default_factory=dict)


class StyleTransfer:
    """The style-transfer engine: targets computed once, then `run(steps)` as often as you like.

    content, style: anything `load_image` accepts; `style` may also be a list of styles,
    mixed by `config.style_blend_weights`. `init_image` overrides `config.init`.
    Settings may be changed between runs with `update(...)`; weights and the learning rate
    take effect on the next step, and the image carries on from where it was.
    A run that cannot fit in the memory free is refused when the engine is built
    (`memory.NotEnoughMemory`); `fits_for` (a StyleTransferConfig) makes that check for other
    settings than this run's: `stylize_multiscale` passes its largest size's.
    """

    def __init__(self, content, style, config=None, *, init_image=None, model=None, fits_for=None, **options):
        self.config = (config or StyleTransferConfig()).replace(**options).validate()
        config = self.config
        self.device = pick_device(config.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # the image size is fixed: let cuDNN pick its fastest kernels
        self.model = model if model is not None else cached_vgg19(
            config.weights, config.pooling, self.device, config.normalized_network)
        # The precision is decided here, once (None: float32), and passed on: to the memory
        # check, the forward passes and the loss scaling.
        self.autocast_dtype = speed.run_precision(config, self.device, self.model)
        # A size that cannot fit is refused here, in one line, before the images and anything
        # large are allocated (the network itself is 80 MB). The command line, the notebooks
        # and the studio rely on this check; coarse-to-fine passes its largest size's settings
        # as `fits_for`, so that its run is refused before the first, small size.
        memory.check_fits(fits_for or config, content, style, device=self.device, precision=self.autocast_dtype)
        self.content = load_image(content, config.size_px).to(self.device)
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise StyleTransferError("no style image given")
        blend = config.style_blend_weights or (1.0,) * len(styles)
        if len(blend) != len(styles):
            raise StyleTransferError(
                f"{len(blend)} style blend weights for {len(styles)} style images: give one per style"
            )
        style_px = round(config.size_px * config.style_scale)
        if style_px < MIN_SIDE_PX:
            raise StyleTransferError(
                f"style scale {config.style_scale:g} makes the style image {style_px} px at size {config.size_px}: "
                f"VGG-19 needs at least {MIN_SIDE_PX} px; use a larger style scale or size"
            )
        self.styles = [load_image(s, style_px).to(self.device) for s in styles]
        # Colour preservation is a step before the run and one after it (see helpers.color).
        self.photo = self.content
        self.content, self.styles = color.prepare_inputs(config.preserve_color, self.content, self.styles)
        self.blend = [w / sum(blend) for w in blend]
        self._compute_targets()
        generator = torch.Generator().manual_seed(config.seed)
        if init_image is not None:
            h, w = self.content.shape[-2:]
            start = load_image(init_image)
            start = torch.nn.functional.interpolate(start, size=(h, w), mode="bilinear", align_corners=False)
        elif config.init == "noise":
            start = torch.rand(self.content.shape, generator=generator)
        else:
            start = self.content.detach().cpu().clone()
        start = color.prepare_start(config.preserve_color, start)
        layout = torch.channels_last if config.optimizer == "adam" else torch.contiguous_format
        # L-BFGS flattens gradients with .view(-1), which needs the standard layout.
        self.image = start.to(self.device).contiguous(memory_format=layout).requires_grad_(True)
        self.best_image = self.image.detach().clone()
        self.best_loss = torch.tensor(float("inf"), device=self.device)
        self.history = []
        self.step = 0
        self._make_optimizer()

    # --- setup ----------------------------------------------------------------------

    def _features(self, image, layers):
        return speed.network_features(self.model, image, layers, self.autocast_dtype)

    @torch.no_grad()
    def _compute_targets(self):
        cfg = self.config
        content = self._features(self.content, cfg.content_layers)
        self.content_targets = {name: content[name].float() for name in cfg.content_layers}
        grams = {name: 0.0 for name in cfg.style_layers}
        for weight, style in zip(self.blend, self.styles):
            feats = self._features(style, cfg.style_layers)
            for name in cfg.style_layers:
                grams[name] = grams[name] + weight * speed.fast_gram_matrix(feats[name])
        self.style_targets = grams
        self.loss = losses.StyleTransferLoss(grams, self.content_targets, gram=speed.fast_gram_matrix)
        self.content_norms, self.style_norms = self.loss.content_norms, self.loss.style_norms
        self.layers = list(dict.fromkeys(list(cfg.content_layers) + list(cfg.style_layers)))

    def _make_optimizer(self):
        cfg = self.config
        lr = cfg.lr()
        if cfg.optimizer == "lbfgs":
            self.optimizer = torch.optim.LBFGS([self.image], lr=lr, max_iter=1, history_size=50,
                                               line_search_fn="strong_wolfe")
            self.scaler = self.graph = self._last_eval = None
            return
        cuda = self.device.type == "cuda"
        self.scaler = speed.grad_scaler(self.autocast_dtype, self.device)
        graph = cfg.cuda_graphs and cuda and self.scaler is None
        # fused: one kernel per step on a GPU instead of a dozen small ones; capturable: its
        # step counter lives on the GPU, so that a CUDA graph can replay it
        if cuda:
            self.optimizer = torch.optim.Adam([self.image], lr=lr, fused=True, capturable=graph)
        else:  # the same update, without importing torch._dynamo at every start (speed.Adam)
            self.optimizer = speed.Adam(self.image, lr=lr)
        self.graph = speed.CudaGraphStep(self._adam_step, self.optimizer, self.device) if graph else None

    @property
    def use_cuda_graph(self):
        """Whether Adam's steps are replayed from a CUDA graph (see `speed.CudaGraphStep`)."""
        return self.graph is not None and not self.graph.failed

    def update(self, **changes):
        """Change settings between steps. Weights, learning rate and report_every take effect
        at once and keep the image and the optimizer's state; anything that changes the
        targets (layers, images, size) needs a new StyleTransfer."""
        live = {"content_weight", "style_weight", "tv_weight", "style_layer_weights",
                "learning_rate", "report_every", "steps"}
        bad = set(changes) - live
        if bad:
            raise StyleTransferError(
                f"{sorted(bad)[0]!r} cannot change during a run; start a new one"
            )
        self.config = self.config.replace(**changes).validate()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr()
        if self.config.optimizer == "lbfgs":
            # New weights, a new function: L-BFGS's curvature pairs describe the old one.
            self.optimizer.state.clear()
            self._last_eval = None
        if self.graph is not None:
            self.graph.reset()  # weights and learning rate are recorded in it: record it again

    # --- the objective ----------------------------------------------------------------

    def layer_shares(self):
        """w_l as given: `config.style_layer_weights`, or the paper's equal 1/L."""
        return losses.layer_shares(self.config)

    def style_layer_weights(self):
        """w_l times the layer's normalization (1 / the mean square of its target)."""
        return self.loss.style_layer_weights(self.config)

    def paper_weights(self, alpha_over_beta):
        r"""The content, style and style-layer weights that make this engine's loss the paper's
        $\alpha\mathcal{L}_{content} + \beta\sum_l \frac{1}{L} E_l$ with the given $\alpha/\beta$,
        up to one overall factor; as a dict for `update(...)`.

        Our terms differ from the paper's raw sums by factors that this engine knows:
        content: $\text{mean}(F-P)^2 / \text{mean}(P^2) = \frac{2}{N M\,\text{mean}(P^2)} \mathcal{L}_{content}$;
        style at layer l: $\text{mean}(G-A)^2/\text{mean}(A^2) = \frac{4}{N_l^2\,\text{mean}(A^2)} E_l$
        (our Gram matrices are the paper's divided by $N_l M_l$). Undoing them per layer gives
        every style layer the paper's equal weight, and α/β its raw meaning. Exact when photo and
        painting have the same size, as in the paper (its raw Gram sums grow with the number of
        positions; ours are means, so a painting of another size counts the same).
        """
        alpha, betas = self._paper_factors()
        # Ours = content_weight·alpha·L_content + Σ_l style_weight·w_l·betas[l]·E_l. The paper's
        # equal layer weights need w_l ∝ 1/betas[l]; then style_weight·w_l·betas[l] = style_weight/scale
        # for every layer, and with content_weight = 1 that must be (alpha/α)·β/L.
        scale = sum(1.0 / b for b in betas.values())
        return {"content_weight": 1.0,
                "style_weight": scale * alpha / (alpha_over_beta * len(betas)),
                "style_layer_weights": tuple(1.0 / (betas[n] * scale) for n in self.config.style_layers)}

    def paper_ratios(self):
        """α/β in the paper's sense for this engine's current weights, one per style layer:
        α is our content term's factor on the paper's raw content loss, β the factor on the
        raw E_l times the number of layers. With `paper_weights` all layers agree; with the
        default relative weights they don't (our per-layer normalization reweights them)."""
        alpha, betas = self._paper_factors()
        cfg = self.config
        return {n: cfg.content_weight * alpha / (cfg.style_weight * w * betas[n] * len(betas))
                for n, w in self.layer_shares().items()}

    def _paper_factors(self):
        """(a, {layer: b_l}): our content term is a·(the paper's ½Σ(F−P)²) per unit content
        weight, and our style term at layer l is b_l·E_l per unit of style weight × w_l."""
        cfg = self.config
        if len(cfg.content_layers) != 1:
            raise StyleTransferError("the paper's α/β needs exactly one content layer, as in the paper")
        (name,) = cfg.content_layers
        alpha = 2.0 / self.content_targets[name].numel() * self.content_norms[name]
        betas = {n: 4.0 / self.style_targets[n].shape[-1] ** 2 * self.style_norms[n] for n in cfg.style_layers}
        return alpha, betas

    def losses(self, image):
        """The weighted loss terms of `image`: {"content", "style", "tv", "total"} as tensors
        (`losses.StyleTransferLoss`, with this run's targets and current weights)."""
        cfg = self.config
        # content_weight 0 (texture synthesis): skip the content layers, so the forward pass
        # stops at the deepest style layer (relu1_1 alone costs a fraction of relu4_2).
        layers = self.layers if cfg.content_weight else list(cfg.style_layers)
        return self.loss(self._features(image, layers), image, cfg)

    # --- running ------------------------------------------------------------------------

    def run(self, steps=None, callback=None, stop=None):
        """Take `steps` optimizer steps (default: config.steps); return a StyleTransferResult.

        callback(progress) is called every `report_every` steps and after the last one.
        stop: a threading.Event (or a function returning True) that ends the run early.
        Ctrl-C also ends it; a loss that becomes NaN or infinite ends it with the last
        good image. `result.stopped` says why a run ended early.
        """
        steps = self.config.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise StyleTransferError(f"steps must be a positive whole number, got {steps!r}")
        end = self.step + steps
        should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
        pending, stopped, start = [], None, time.perf_counter()
        first_step = self.step
        try:
            while self.step < end:
                if should_stop():
                    stopped = "stopped"
                    break
                terms = self._one_step()
                self.step += 1
                pending.append((self.step, torch.stack([terms[k].detach() for k in ("content", "style", "tv", "total")])))
                if self.step % self.config.report_every == 0 or self.step == end:
                    stopped = self._flush(pending)
                    pending = []
                    if stopped:
                        break
                    if callback is not None:
                        elapsed = time.perf_counter() - start
                        callback(Progress(self.step, end, dict(self.history[-1]), self.shown(self.picture()),
                                          elapsed, elapsed / max(1, self.step - first_step)))
        except KeyboardInterrupt:
            stopped = "interrupted"
        except (RuntimeError, MemoryError) as err:  # out of memory: a state, like Ctrl-C, not a crash
            if not memory.is_out_of_memory(err):
                raise
            stopped = memory.out_of_memory_message(err, self.device, self.config.size_px, self.step + 1)
        if memory.ran_out_of_memory(stopped):
            self.optimizer.zero_grad(set_to_none=True)
            memory.release_memory(self.device)
        if pending:
            stopped = self._flush(pending) or stopped
        if stopped:
            final = self.best_image
        else:
            final = self.picture()
        return StyleTransferResult(
            image=self.shown(final.detach().float()).cpu().clamp(0, 1).contiguous(), history=list(self.history),
            config=self.config, steps_done=self.step, seconds=time.perf_counter() - start,
            stopped=stopped, device=str(self.device),
        )

    def picture(self):
        """The current image clipped to [0, 1] (L-BFGS's image may stray outside; see `_lbfgs_step`)."""
        return self.image.detach().clamp(0, 1)

    def shown(self, image):
        """The picture to show or save: with preserve_color="luminance" the optimized (grey)
        image's luminance with the photo's colours, otherwise `image` itself."""
        return color.finish(self.config.preserve_color, image, self.photo)

    def _one_step(self):
        if self.config.optimizer == "lbfgs":
            return self._lbfgs_step()
        return self.graph() if self.use_cuda_graph else self._adam_step()

    def _adam_step(self):
        """One Adam step on the image, then clip it to [0, 1]; returns the loss terms."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.losses(self.image)
        self._remember_best(terms["total"])
        if self.scaler is None:
            terms["total"].backward()
            self.optimizer.step()
        else:  # float16 (speed.grad_scaler)
            self.scaler.scale(terms["total"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with torch.no_grad():
            self.image.clamp_(0, 1)
        # Detached: holding on to this step's autograd graph into the next step would keep
        # its nodes alive across streams (a warning, and a hazard, with CUDA graphs).
        return {name: value.detach() for name, value in terms.items()}

    def _lbfgs_step(self):
        """One L-BFGS iteration: a quasi-Newton direction, then a strong-Wolfe line search.

        The bounds: L-BFGS optimizes an unconstrained image x, and the loss is computed on
        the picture clamp(x, 0, 1), inside the closure. Its curvature pairs then describe the
        function it really moves on. Clamping x after each step instead (as Adam's loop does)
        moves the image behind L-BFGS's back, and not clamping at all lets it settle outside
        [0, 1], where the picture it leaves is not the one it optimized. Measured at 128 px in
        float32, 120 network evaluations each, loss of the final picture (start 20.6 / 22.1):
        city + Starry Night: clamp after each step 1.96, no clamp 1.62, clamp in the closure
        1.44 (Adam 1.62); cat + graffiti: 16.1, 16.1 (both stalled), 1.81 (Adam 2.14).
        A sigmoid parametrization did about as well (1.37, 1.84) at the cost of a less
        obvious picture; the clamp in the closure is what we keep.
        """
        box = {}

        def closure():
            x = self.image
            # torch's L-BFGS starts each step by evaluating the point its last line search
            # ended on, which it has already evaluated: give back that evaluation instead of
            # paying for a second forward and backward pass.
            if self._last_eval is not None and torch.equal(self._last_eval[0], x.detach()):
                _, grad, terms = self._last_eval
                x.grad = grad.clone()
                box.setdefault("terms", terms)
                return terms["total"]
            self.optimizer.zero_grad(set_to_none=True)
            picture = x.clamp(0, 1)
            t = self.losses(picture)
            t["total"].backward()
            # L-BFGS also evaluates its line search's trial points: remember the best of all
            # of them, each with the picture it was computed for.
            self._remember_best(t["total"], picture)
            terms = {name: value.detach() for name, value in t.items()}
            self._last_eval = (x.detach().clone(), x.grad.detach().clone(), terms)
            box.setdefault("terms", terms)
            return terms["total"]

        self.optimizer.step(closure)
        state = self.optimizer.state[self.image]
        if state.get("t") == 0:
            # The line search found no step that lowers the loss along L-BFGS's direction.
            # torch's L-BFGS then keeps the same direction and history, every later step
            # fails the same way, and the run stalls for good (found from noise with a heavy
            # style weight: Figure 3's texture end). Forgetting the history restarts it from
            # steepest descent. It keeps going, slowly: there Adam is far better (helpers.figure3).
            self.optimizer.state.clear()
        return box["terms"]

    @torch.no_grad()
    def _remember_best(self, total, image=None):
        # The loss was computed for `image` (by default the image before this step): keep it
        # if it is the best so far. torch.where avoids a GPU->CPU sync on every step; copy_ keeps the two
        # tensors in place, as a CUDA graph replaying this needs.
        better = torch.isfinite(total) & (total < self.best_loss)
        self.best_loss.copy_(torch.where(better, total.detach(), self.best_loss))
        image = self.image if image is None else image
        self.best_image.copy_(torch.where(better, image.detach(), self.best_image))

    def _flush(self, pending):
        values = torch.stack([v for _, v in pending]).float().cpu().tolist()
        for (step, _), (c, s, tv, total) in zip(pending, values):
            if not all(math.isfinite(x) for x in (c, s, tv, total)):
                what = "NaN" if math.isnan(total) else "infinite"
                if not self.history:
                    return (f"the loss is {what} from the first step: a weight is too large "
                            f"(content {self.config.content_weight:g}, style {self.config.style_weight:g}, "
                            f"tv {self.config.tv_weight:g}); lower it. Kept the starting image.")
                return (
                    f"the loss became {what} at step {step}: the learning rate "
                    f"{self.config.lr():g} is probably too high for {self.config.optimizer}; "
                    f"lower it (the default is {DEFAULT_LEARNING_RATES[self.config.optimizer]:g}). "
                    "Kept the last good image."
                )
            self.history.append({"step": step, "content": c, "style": s, "tv": tv, "total": total})
        return None


def stylize(content, style, config=None, *, callback=None, stop=None, init_image=None, model=None, **options):
    """Paint `content` in the style of `style`; return a StyleTransferResult.

    Options are the fields of `StyleTransferConfig` (size_px, steps, content_weight,
    style_weight, tv_weight, optimizer, learning_rate, init, seed, device, ...). Content
    and style may differ in size and aspect ratio: the style image is only ever seen
    through its Gram matrices, which do not depend on layout.
    """
    config = (config or StyleTransferConfig()).replace(**options)
    torch.manual_seed(config.seed)
    engine = StyleTransfer(content, style, config, init_image=init_image, model=model)
    return engine.run(callback=callback, stop=stop)
