// Learning-rate schedules as pure functions of the iteration (so a resumed run needs only the step
// count): Detectron2's WarmupMultiStepLR, which torchvision's detection recipe matches with
// LinearLR(start_factor=0.001) followed by MultiStepLR. They return a factor for SGD.scaleLr().

export interface WarmupOptions {
  /** Iterations of warmup; the factor is 1 from this iteration on. */
  warmupIters: number;
  /** Factor at iteration 0 (Detectron2 default 0.001). */
  warmupFactor?: number;
  /** 'linear' ramps from warmupFactor to 1; 'constant' holds warmupFactor. */
  warmupMethod?: 'linear' | 'constant';
}

/** Detectron2's _get_warmup_factor_at_iter. */
export function warmupFactorAt(iter: number, opts: WarmupOptions): number {
  const { warmupIters, warmupFactor = 0.001, warmupMethod = 'linear' } = opts;
  if (iter >= warmupIters) return 1;
  if (warmupMethod === 'constant') return warmupFactor;
  const alpha = iter / warmupIters;
  return warmupFactor * (1 - alpha) + alpha;
}

/** Throws unless the milestones never decrease; `what` names them in the message. */
export function checkMilestones(milestones: readonly number[], what = 'multiStep: milestones'): void {
  for (let i = 1; i < milestones.length; i++) {
    if (!(milestones[i]! >= milestones[i - 1]!)) throw new Error(`${what} must not decrease, got [${milestones.join(', ')}]`);
  }
}

/** gamma ** (number of milestones <= iter), as MultiStepLR (bisect_right). Equal milestones are
 *  allowed (as in Detectron2 and PyTorch): a short run's fractional steps may round together. */
export function multiStepFactorAt(iter: number, milestones: readonly number[], gamma = 0.1): number {
  checkMilestones(milestones);
  let passed = 0;
  for (const m of milestones) if (m <= iter) passed++;
  return gamma ** passed;
}

export interface WarmupMultiStepOptions extends WarmupOptions {
  milestones: readonly number[];
  gamma?: number;
}

/** Detectron2's WarmupMultiStepLR: warmup factor times gamma ** (milestones passed). */
export function warmupMultiStepFactorAt(iter: number, opts: WarmupMultiStepOptions): number {
  return warmupFactorAt(iter, opts) * multiStepFactorAt(iter, opts.milestones, opts.gamma ?? 0.1);
}

/** The schedule as a function of the iteration: `opt.scaleLr(schedule(iter))` before each step. */
export function warmupMultiStep(opts: WarmupMultiStepOptions): (iter: number) => number {
  multiStepFactorAt(0, opts.milestones); // validates the milestones up front
  return (iter) => warmupMultiStepFactorAt(iter, opts);
}
