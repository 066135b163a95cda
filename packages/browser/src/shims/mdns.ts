/** @libp2p/mdns for the browser bundle: a page cannot multicast; edge-host only asks for it when mdns is on. */
export function mdns(): never {
  throw new Error('mDNS discovery is not available in a browser node');
}
