//! How the binary prints an error: the whole chain of causes on one line, each said once.

/// An error and its causes on one line, `outer: cause: root cause`, as the binary prints
/// them. A cause is left out when the level above already ends with its text: many library
/// errors write their source into their own message (`cannot read: No such file or
/// directory (os error 2)`), and printing the chain as well would say it twice.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.is_empty() {
            text.push_str(&message);
        } else if !previous.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("nope.toml: cannot read: {source}")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_printed_once() {
        let os = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Read { source: os() });
        let text = error_chain(&error);
        assert_eq!(text, format!("nope.toml: cannot read: {}", os()));
        let error = anyhow::Error::new(Read { source: os() }).context("HEC source");
        assert_eq!(error_chain(&error), format!("HEC source: nope.toml: cannot read: {}", os()));
        let plain = anyhow::Error::new(os()).context("reading rules");
        assert_eq!(error_chain(&plain), format!("reading rules: {}", os()));
    }
}
