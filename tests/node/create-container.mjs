// Creates a container in Azurite with the well-known development account, for the test stack.
//   node create-container.mjs http://127.0.0.1:<port>/devstoreaccount1 <container>
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

const [endpoint, container] = process.argv.slice(2);
const credential = new StorageSharedKeyCredential(
  'devstoreaccount1',
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
);
const service = new BlobServiceClient(endpoint, credential);
await service.getContainerClient(container).createIfNotExists();
console.log('created');
