// Sign argv[2] with the private key argv[3] exactly as TronLink/TronWeb do (signMessageV2) and
// print the signature and the key's address as JSON.
const { TronWeb, Trx } = require('tronweb');

const [message, privateKey] = process.argv.slice(2);
const tronWeb = new TronWeb({ fullHost: 'http://127.0.0.1:9' }); // never contacted
console.log(JSON.stringify({
  signature: Trx.signMessageV2(message, privateKey),
  address: tronWeb.address.fromPrivateKey(privateKey),
}));
