// md5worker computes, off the page's main thread, the md5 of a whole file
// and of each of its chunks in one pass (SparkMD5, vendored). Message in:
// {id, file, chunkSize}; out: {id, progress} while reading, then
// {id, md5, chunks: [md5 of chunk 1, ...]} or {id, error}.
'use strict';
importScripts('vendor/spark-md5.js');

self.onmessage = async (ev) => {
  const { id, file, chunkSize } = ev.data;
  try {
    const whole = new SparkMD5.ArrayBuffer();
    const chunks = [];
    let last = 0;
    for (let off = 0; off < file.size; off += chunkSize) {
      const buf = await file.slice(off, Math.min(off + chunkSize, file.size)).arrayBuffer();
      whole.append(buf);
      chunks.push(SparkMD5.ArrayBuffer.hash(buf));
      const now = Date.now();
      if (now - last > 100) {
        last = now;
        self.postMessage({ id, progress: Math.min(off + chunkSize, file.size) / file.size });
      }
    }
    self.postMessage({ id, md5: whole.end(), chunks });
  } catch (e) {
    self.postMessage({ id, error: String(e && e.message || e) });
  }
};
