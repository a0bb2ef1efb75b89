// A small PNG decoder and encoder in plain Node.js (zlib does the compression), enough for the
// worker's thumbnails without native image libraries. Decodes non-interlaced PNGs of every colour
// type (greyscale, RGB, palette, grey+alpha, RGBA) at bit depths 1 to 16 (16-bit samples keep
// their high byte), all five row filters, and tRNS transparency; encodes 8-bit RGBA. What it
// cannot read (interlaced, too large) throws a `PngUnsupported`, so callers can fall back.
// Reference: the PNG specification (W3C, Third Edition), chapters 7 to 11.
'use strict';
const zlib = require('zlib');

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
/** Images above this many pixels are refused before they are inflated (4 bytes each in memory). */
const MAX_PIXELS = 40e6;
/** Samples per pixel of each colour type. */
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

class PngUnsupported extends Error {}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
  return n >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The Paeth predictor: whichever of left, above and upper-left is nearest to left + above - upper-left. */
function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes a PNG into `{ width, height, data }`, data being 8-bit RGBA rows. */
function decode(buf) {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new PngUnsupported('not a PNG');
  let header;
  let palette;
  let transparency;
  const idat = [];
  for (let pos = 8; pos + 12 <= buf.length;) {
    const length = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + length);
    if (
      pos + 12 + length > buf.length ||
      crc32(buf.subarray(pos + 4, pos + 8 + length)) !== buf.readUInt32BE(pos + 8 + length)
    ) {
      throw new Error(`PNG chunk ${type} is damaged`);
    }
    pos += 12 + length;
    if (type === 'IHDR') {
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        depth: data[8],
        colorType: data[9],
        interlaced: data[12] !== 0,
      };
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') transparency = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  if (!header || idat.length === 0) throw new Error('PNG has no IHDR or no IDAT');
  const { width, height, depth, colorType } = header;
  const channels = CHANNELS[colorType];
  const depths = colorType === 3 ? [1, 2, 4, 8] : colorType === 0 ? [1, 2, 4, 8, 16] : [8, 16];
  if (!channels || !depths.includes(depth))
    throw new Error(`PNG colour type ${colorType} with depth ${depth} is invalid`);
  if (colorType === 3 && !palette) throw new Error('PNG palette image without PLTE');
  if (header.interlaced) throw new PngUnsupported('interlaced PNG');
  if (width * height > MAX_PIXELS || width === 0 || height === 0) {
    throw new PngUnsupported(`PNG of ${width}x${height} pixels is too large`);
  }

  // Undo the row filters (spec chapter 9) in place; `bpp` is the byte distance to the pixel to the left.
  const stride = Math.ceil((width * channels * depth) / 8);
  const bpp = Math.max(1, (channels * depth) / 8);
  let raw;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: height * (stride + 1) });
  } catch (e) {
    // A stream longer than the image declares is damaged, not a reason to use more memory.
    throw new Error(`PNG image data does not inflate: ${e.code || e.message}`);
  }
  if (raw.length < height * (stride + 1)) throw new Error('PNG image data is shorter than the image');
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    const up = row - stride - 1;
    const filter = raw[row - 1];
    if (filter > 4) throw new Error(`PNG row ${y} has unknown filter ${filter}`);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? raw[row + i - bpp] : 0;
      const b = y > 0 ? raw[up + i] : 0;
      if (filter === 1) raw[row + i] += a;
      else if (filter === 2) raw[row + i] += b;
      else if (filter === 3) raw[row + i] += (a + b) >> 1;
      else if (filter === 4) raw[row + i] += paeth(a, b, i >= bpp && y > 0 ? raw[up + i - bpp] : 0);
    }
  }

  // Each sample at 8 bits: sub-byte samples are scaled (palette indexes are not), 16-bit keep the high byte.
  const max = (1 << Math.min(depth, 8)) - 1;
  const sample = (row, n) => {
    if (depth === 8) return raw[row + n];
    if (depth === 16) return raw[row + 2 * n];
    const v = (raw[row + ((n * depth) >> 3)] >> (8 - depth - ((n * depth) & 7))) & max;
    return colorType === 3 ? v : Math.round((v * 255) / max);
  };
  // tRNS for greyscale and RGB names one colour (16-bit values, compared at 8 bits) that is transparent.
  const key =
    transparency && (colorType === 0 || colorType === 2)
      ? Array.from({ length: channels }, (_, k) => {
          const v = transparency.readUInt16BE(2 * k);
          return depth === 16 ? v >> 8 : depth === 8 ? v : Math.round((v * 255) / max);
        })
      : undefined;
  const data = Buffer.alloc(width * height * 4);
  const alpha = channels === 2 || channels === 4;
  for (let y = 0, o = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    for (let x = 0, n = 0; x < width; x++, o += 4, n += channels) {
      if (colorType === 3) {
        const index = sample(row, n);
        palette.copy(data, o, index * 3, index * 3 + 3);
        data[o + 3] = transparency && index < transparency.length ? transparency[index] : 255;
        continue;
      }
      data[o] = sample(row, n);
      data[o + 1] = channels < 3 ? data[o] : sample(row, n + 1);
      data[o + 2] = channels < 3 ? data[o] : sample(row, n + 2);
      data[o + 3] = alpha ? sample(row, n + channels - 1) : 255;
      if (key && key.every((v, k) => v === sample(row, n + k))) data[o + 3] = 0;
    }
  }
  return { width, height, data };
}

/**
 * Scales an RGBA image down so that its longer side is at most `maxSide`, averaging each box of
 * source pixels into one (a box filter; smaller images are returned as they are).
 */
function thumbnail(image, maxSide) {
  const { width, height, data } = image;
  const scale = Math.min(1, maxSide / Math.max(width, height));
  if (scale === 1) return image;
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const out = Buffer.alloc(w * h * 4);
  for (let y = 0, o = 0; y < h; y++) {
    const y0 = Math.floor((y * height) / h);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * height) / h));
    for (let x = 0; x < w; x++, o += 4) {
      const x0 = Math.floor((x * width) / w);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * width) / w));
      const sum = [0, 0, 0, 0];
      for (let sy = y0; sy < y1; sy++) {
        for (let sx = x0, i = (sy * width + x0) * 4; sx < x1; sx++, i += 4) {
          for (let k = 0; k < 4; k++) sum[k] += data[i + k];
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      for (let k = 0; k < 4; k++) out[o + k] = Math.round(sum[k] / n);
    }
  }
  return { width: w, height: h, data: out };
}

/** A PNG chunk: length, type, data, CRC of type and data. */
function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** Encodes 8-bit RGBA as a PNG: every row with filter 0 (none), deflated by zlib. */
function encode({ width, height, data }) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8);
  const rows = Buffer.alloc(height * (width * 4 + 1));
  for (let y = 0; y < height; y++)
    data.copy(rows, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

module.exports = { decode, encode, thumbnail, PngUnsupported };
