//! wazuh source (in progress).
