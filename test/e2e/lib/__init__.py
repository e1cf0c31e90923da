"""Helpers of the catena end-to-end suite (pytest, real programs on loopback).

Modules:
  util         paths, free ports, bounded waits, child processes stopped by PID
  pki          test PKI made with the openssl CLI (roots, intermediate, leaves, CRL, OCSP index)
  origins      generated static files, the nginx origins and the Python echo origin
  echo_server  the echo origin itself (run as a subprocess)
  dnsmasq      dnsmasq as the DNS server catena is pointed at, and its query log
  dns          a tiny DNS client (to check the fixture; no system resolver involved)
  catena       catena nodes: config writer, start/stop/reload, event and access logs
  logs         event-log and W3C access-log parsing
  http         raw-socket HTTP/1.1 and CONNECT helpers, and a curl wrapper
  intercept    TLS interception: keyrings (catenactl), tls config, s_client, TLS origins,
               certificate inspection, the admin endpoint
  valorigins   certificate-validation origins and their OCSP responders
  ocsp         the OCSP responder shim around `openssl ocsp`
  squid        Squid as a foreign peer
  netns        network namespaces for the transparent-mode tests (root only)
"""
