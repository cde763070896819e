// Registers the service worker viewer/frontend.py writes (/sw.js): it keeps the build's hashed
// scripts and styles, stored at install, so that the next visit runs them with V8's code cache
// (issue F). It never stores pages, /api or /dicomweb answers. Registered when the page is idle,
// so that its download and compilation do not compete with the first image or the stack.
let registered = false;

export function keepAssets(): void {
  if (registered || !('serviceWorker' in navigator) || !window.isSecureContext) return;
  registered = true;
  void navigator.serviceWorker.register('/sw.js', { scope: '/', updateViaCache: 'none' }).catch(() => undefined);
}

/** Register ``delay_ms`` after the page's load event (a page may call keepAssets sooner). */
export function keepAssetsLater(delayMs: number): void {
  const later = () => window.setTimeout(keepAssets, delayMs);
  if (document.readyState === 'complete') later();
  else window.addEventListener('load', later, { once: true });
}
