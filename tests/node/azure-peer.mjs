// The other Azure Blob client for tests/azure.rs: Microsoft's own @azure/storage-blob, with
// Azurite's well-known development account (not a secret).
//   node azure-peer.mjs ENDPOINT create CONTAINER
//   node azure-peer.mjs ENDPOINT list CONTAINER            committed blobs, one name a line
//   node azure-peer.mjs ENDPOINT uncommitted CONTAINER     blobs with only uncommitted blocks
//   node azure-peer.mjs ENDPOINT download CONTAINER BLOB FILE
//   node azure-peer.mjs ENDPOINT upload CONTAINER BLOB FILE      FILE as a block blob BLOB
//   node azure-peer.mjs ENDPOINT sas CONTAINER MINUTES     a container SAS (read, add, create,
//                                                          write, delete, list) valid for
//                                                          MINUTES (negative: expired already)
import {
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';

const ACCOUNT = 'devstoreaccount1';
const KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const [endpoint, command, container, ...rest] = process.argv.slice(2);
const credential = new StorageSharedKeyCredential(ACCOUNT, KEY);
const client = new BlobServiceClient(endpoint, credential).getContainerClient(container);

async function names(includeUncommitedBlobs) {
  const found = [];
  for await (const blob of client.listBlobsFlat({ includeUncommitedBlobs })) {
    found.push(blob.name);
  }
  return found;
}

switch (command) {
  case 'create':
    await client.createIfNotExists();
    break;
  case 'list':
    for (const name of await names(false)) console.log(name);
    break;
  case 'uncommitted': {
    const committed = new Set(await names(false));
    for (const name of await names(true)) {
      if (!committed.has(name)) console.log(name);
    }
    break;
  }
  case 'download':
    await client.getBlobClient(rest[0]).downloadToFile(rest[1]);
    break;
  case 'upload':
    await client.getBlockBlobClient(rest[0]).uploadFile(rest[1]);
    break;
  case 'sas': {
    const minutes = Number(rest[0]);
    const now = Date.now();
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse('racwdl'),
        startsOn: new Date(Math.min(now, now + minutes * 60_000) - 3_600_000),
        expiresOn: new Date(now + minutes * 60_000),
        version: '2020-12-06',
      },
      credential,
    );
    console.log(sas.toString());
    break;
  }
  default:
    console.error(`unknown command ${command}`);
    process.exit(2);
}
