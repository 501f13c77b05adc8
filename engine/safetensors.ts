// (placeholder: safetensors)
export {};
