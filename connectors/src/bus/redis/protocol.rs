//! Reading stream replies (`XREADGROUP`, `XRANGE`, `XAUTOCLAIM`) straight from the reply
//! values, in order and without copying them: the entries of a consumer's own pending list can
//! come back without fields (`[id, nil]`) once the stream trimmed them, which typed replies
//! reject as a whole.

use std::collections::HashMap;

use ::redis::Value;

use super::RedisBusError;

/// One stream entry: its id and its fields, `None` when the entry no longer exists.
pub(crate) type RawEntry = (String, Option<HashMap<String, Value>>);

fn unexpected(what: &str, value: &Value) -> RedisBusError {
    RedisBusError::Reply(format!("{what}: {value:?}"))
}

fn string(value: Value) -> Result<String, RedisBusError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|error| RedisBusError::Reply(error.to_string())),
        Value::SimpleString(text) => Ok(text),
        other => Err(unexpected("expected a string", &other)),
    }
}

fn fields(value: Value) -> Result<Option<HashMap<String, Value>>, RedisBusError> {
    let pairs = match value {
        Value::Nil => return Ok(None),
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((name, value));
            }
            pairs
        }
        Value::Map(pairs) => pairs,
        other => return Err(unexpected("expected entry fields", &other)),
    };
    let mut map = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        map.insert(string(name)?, value);
    }
    Ok(Some(map))
}

/// The entries of an `XRANGE` reply, or of one stream in an `XREAD[GROUP]` reply.
pub(crate) fn entries(value: Value) -> Result<Vec<RawEntry>, RedisBusError> {
    let Value::Array(items) = value else {
        return Err(unexpected("expected an array of entries", &value));
    };
    items
        .into_iter()
        .map(|entry| match entry {
            Value::Array(parts) if parts.len() >= 2 => {
                let mut parts = parts.into_iter();
                let id = string(parts.next().unwrap_or(Value::Nil))?;
                Ok((id, fields(parts.next().unwrap_or(Value::Nil))?))
            }
            other => Err(unexpected("expected [id, fields]", &other)),
        })
        .collect()
}

/// The entries of an `XREAD[GROUP]` reply for one stream (nil: nothing arrived in time).
pub(crate) fn read_reply(value: Value) -> Result<Vec<RawEntry>, RedisBusError> {
    let streams = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(parts) if parts.len() == 2 => {
                    let mut parts = parts.into_iter();
                    Ok((parts.next().unwrap_or(Value::Nil), parts.next().unwrap_or(Value::Nil)))
                }
                other => Err(unexpected("expected [stream, entries]", &other)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams,
        other => return Err(unexpected("expected a read reply", &other)),
    };
    let mut all = Vec::new();
    for (_, stream_entries) in streams {
        all.extend(entries(stream_entries)?);
    }
    Ok(all)
}

/// An `XAUTOCLAIM` reply: the cursor to continue from, the claimed entries and the ids of
/// pending entries that no longer existed (removed from the pending list by Redis).
pub(crate) fn autoclaim_reply(value: Value) -> Result<(String, Vec<RawEntry>, Vec<String>), RedisBusError> {
    let Value::Array(parts) = value else {
        return Err(unexpected("expected an XAUTOCLAIM reply", &value));
    };
    let mut parts = parts.into_iter();
    let cursor = string(parts.next().unwrap_or(Value::Nil))?;
    let claimed = entries(parts.next().unwrap_or(Value::Array(Vec::new())))?;
    let deleted = match parts.next() {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Array(ids)) => ids.into_iter().map(string).collect::<Result<_, _>>()?,
        Some(other) => return Err(unexpected("expected deleted ids", &other)),
    };
    Ok((cursor, claimed, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_entries_in_order_including_trimmed_ones() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![bulk("2-0"), Value::Array(vec![bulk("a"), bulk("1")])]),
                Value::Array(vec![bulk("1-0"), Value::Nil]),
            ]),
        ])]);
        let entries = read_reply(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "2-0");
        assert_eq!(entries[0].1.as_ref().unwrap()["a"], bulk("1"));
        assert_eq!(entries[1], ("1-0".to_string(), None));
        assert!(read_reply(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn reads_an_autoclaim_reply() {
        let reply = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![bulk("5-1"), Value::Array(vec![bulk("v"), bulk("1")])])]),
            Value::Array(vec![bulk("4-0")]),
        ]);
        let (cursor, claimed, deleted) = autoclaim_reply(reply).unwrap();
        assert_eq!(cursor, "0-0");
        assert_eq!(claimed[0].0, "5-1");
        assert_eq!(deleted, vec!["4-0".to_string()]);
    }
}
