/**
 * A value loaded on first use — typically a module reached by dynamic `import()` and the object
 * built from it, kept out of a Lambda's cold start. Concurrent first uses share one load; a load
 * that fails is not kept, so the next use tries again (a failed import or constructor is not
 * remembered for the container's lifetime).
 */
export function onFirstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => {
    loaded ??= load().catch((error: unknown) => {
      loaded = undefined;
      throw error;
    });
    return loaded;
  };
}
