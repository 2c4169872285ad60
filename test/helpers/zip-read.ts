/** Reading what a user downloaded: a zip's entry names, or one entry's bytes. */
import yauzl from 'yauzl';

function open(buf: Uint8Array): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.fromBuffer(Buffer.from(buf), { lazyEntries: true }, (err, zip) => (err || !zip ? reject(err) : resolve(zip))),
  );
}

export async function zipEntryNames(buf: Uint8Array): Promise<string[]> {
  const zip = await open(buf);
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    zip.on('entry', (entry: yauzl.Entry) => (names.push(entry.fileName), zip.readEntry()));
    zip.on('end', () => resolve(names));
    zip.on('error', reject);
    zip.readEntry();
  });
}

export async function zipEntry(buf: Uint8Array, name: string): Promise<Buffer> {
  const zip = await open(buf);
  return new Promise((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileName !== name) return zip.readEntry();
      zip.openReadStream(entry, (e, stream) => {
        if (e || !stream) return reject(e);
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
      });
    });
    zip.on('end', () => reject(new Error(`no ${name}`)));
    zip.on('error', reject);
    zip.readEntry();
  });
}
