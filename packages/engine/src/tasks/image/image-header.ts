/** Reads an image's format and size from its first bytes, without decoding pixels. */
export interface ImageHeader {
  format: 'jpeg' | 'png';
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function readImageHeader(buf: Uint8Array): ImageHeader | null {
  if (buf.length >= 24 && PNG_SIGNATURE.every((b, i) => buf[i] === b)) {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    // The first chunk must be IHDR: width and height are its first two big-endian u32.
    if (String.fromCharCode(buf[12]!, buf[13]!, buf[14]!, buf[15]!) !== 'IHDR') return null;
    return { format: 'png', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8) return readJpegSize(buf);
  return null;
}

function readJpegSize(buf: Uint8Array): ImageHeader | null {
  let i = 2;
  while (i + 4 <= buf.length) {
    if (buf[i] !== 0xff) return null;
    const marker = buf[i + 1]!;
    if (marker === 0xff) { i += 1; continue; } // fill byte
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) { i += 2; continue; }
    const length = (buf[i + 2]! << 8) | buf[i + 3]!;
    if (length < 2) return null;
    // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > buf.length) return null;
      const height = (buf[i + 5]! << 8) | buf[i + 6]!;
      const width = (buf[i + 7]! << 8) | buf[i + 8]!;
      return width > 0 && height > 0 ? { format: 'jpeg', width, height } : null;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image / scan before any frame header
    i += 2 + length;
  }
  return null;
}
