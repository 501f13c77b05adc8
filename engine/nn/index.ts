// (placeholder: nn modules)
export {};
