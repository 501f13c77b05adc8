// (placeholder: optimizers)
export {};
