// Keep a DPoP key across page loads. A CryptoKeyPair is structured-cloneable, so IndexedDB
// stores the key objects themselves: the private key stays non-extractable (the page can
// still sign with it after a reload, and still cannot read it). Browsers only (IndexedDB).
import { DpopKey } from "./dpop.js";

const DB_NAME = "did-auth-client";
const STORE = "dpop-keys";

function openDb(indexedDB) {
  if (!indexedDB) throw new Error("IndexedDB is not available here (a browser page is needed)");
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, fn, indexedDB) {
  const db = await openDb(indexedDB);
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Store `key`'s CryptoKeyPair under `name` (in this origin's IndexedDB). */
export async function saveDpopKey(key, { name = "default", indexedDB = globalThis.indexedDB } = {}) {
  await withStore("readwrite", (store) => store.put(key.keyPair, name), indexedDB);
}

/** The DpopKey stored under `name`, or null. */
export async function loadDpopKey({ name = "default", indexedDB = globalThis.indexedDB } = {}) {
  const keyPair = await withStore("readonly", (store) => store.get(name), indexedDB);
  return keyPair ? DpopKey.fromKeyPair(keyPair) : null;
}

/** Forget the key stored under `name` (e.g. at sign-out). */
export async function deleteDpopKey({ name = "default", indexedDB = globalThis.indexedDB } = {}) {
  await withStore("readwrite", (store) => store.delete(name), indexedDB);
}
